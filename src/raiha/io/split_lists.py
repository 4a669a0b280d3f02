"""iHarmony4 split lists: ``IHD_<split>.txt`` at the root, or per-subset lists of bare names.

Formats read (the first one found wins):
1. ``<root>/IHD_<split>.txt``: one ``Subset/composite_images/name.jpg`` a line
   (``Subset/name.jpg`` is accepted too).
2. ``<root>/<Subset>/<Subset>_<split>.txt`` or ``<root>/<Subset>_<split>.txt``: one bare
   composite name a line (a leading ``composite_images/`` is accepted).
Blank lines, surrounding spaces and CRLF line ends are ignored; the order of the lines is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from raiha.io.atomic_io import atomic_write_text
from raiha.io.errors import RaihaDataError
from raiha.io.naming import MASK_SUFFIX, mask_name_for, real_name_for

IHARMONY4_SUBSETS: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")

# Composite counts of the official lists (SPEC section 2).
IHARMONY4_SPLIT_SIZES: dict[str, dict[str, int]] = {
    "train": {
        "HCOCO": 38545,
        "HAdobe5k": 19437,
        "HFlickr": 7449,
        "Hday2night": 311,
        "total": 65742,
    },
    "test": {"HCOCO": 4283, "HAdobe5k": 2160, "HFlickr": 828, "Hday2night": 133, "total": 7404},
}

COMPOSITE_DIR = "composite_images"
MASK_DIR = "masks"
REAL_DIR = "real_images"


@dataclass(frozen=True)
class HarmonizationRecord:
    """One composite with its mask and real image, paths relative to the dataset root."""

    subset: str
    composite: str  # "HAdobe5k/composite_images/a3630_1_5.jpg"
    mask: str  # "HAdobe5k/masks/a3630_1.png"
    real: str  # "HAdobe5k/real_images/a3630.jpg"


def make_record(
    subset: str, composite_name: str, mask_suffix: str = MASK_SUFFIX
) -> HarmonizationRecord:
    """The record of composite ``composite_name`` (a bare name) in ``subset``."""
    return HarmonizationRecord(
        subset=subset,
        composite=f"{subset}/{COMPOSITE_DIR}/{composite_name}",
        mask=f"{subset}/{MASK_DIR}/{mask_name_for(composite_name, mask_suffix)}",
        real=f"{subset}/{REAL_DIR}/{real_name_for(composite_name)}",
    )


def _list_lines(list_path: Path) -> list[tuple[int, str]]:
    """Non-blank stripped lines of ``list_path`` with their 1-based line numbers."""
    text = list_path.read_text(encoding="utf-8-sig")
    return [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]


def _read_ihd_list(list_path: Path, mask_suffix: str) -> list[HarmonizationRecord]:
    """Parse ``IHD_<split>.txt`` lines ``Subset/composite_images/name.jpg``."""
    records = []
    for number, line in _list_lines(list_path):
        parts = PurePosixPath(line.replace("\\", "/")).parts
        if (len(parts) == 3 and parts[1] == COMPOSITE_DIR) or len(parts) == 2:
            subset, name = parts[0], parts[-1]
        else:
            raise RaihaDataError(
                f"{list_path}:{number}: line {line!r} is not 'Subset/{COMPOSITE_DIR}/name.jpg'; fix the list"
            )
        try:
            records.append(make_record(subset, name, mask_suffix))
        except RaihaDataError as error:
            raise RaihaDataError(f"{list_path}:{number}: {error}") from error
    return records


def _read_subset_list(list_path: Path, subset: str, mask_suffix: str) -> list[HarmonizationRecord]:
    """Parse a per-subset list of bare composite names."""
    records = []
    for number, line in _list_lines(list_path):
        name = PurePosixPath(line.replace("\\", "/")).name
        try:
            records.append(make_record(subset, name, mask_suffix))
        except RaihaDataError as error:
            raise RaihaDataError(f"{list_path}:{number}: {error}") from error
    return records


def _find_subset_lists(root: Path, split: str) -> dict[str, Path]:
    """Per-subset list files found under ``root``, known subsets first, then others by name."""
    found: dict[str, Path] = {}
    for candidate in sorted(root.glob(f"*/*_{split}.txt")) + sorted(root.glob(f"*_{split}.txt")):
        subset = candidate.name[: -len(f"_{split}.txt")]
        nested = candidate.parent != root
        if subset == "IHD" or (nested and candidate.parent.name != subset) or subset in found:
            continue
        found[subset] = candidate
    known = [name for name in IHARMONY4_SUBSETS if name in found]
    others = sorted(name for name in found if name not in IHARMONY4_SUBSETS)
    return {name: found[name] for name in known + others}


def read_split(
    root: str | Path,
    split: str,
    subsets: Sequence[str] | None = None,
    mask_suffix: str = MASK_SUFFIX,
) -> list[HarmonizationRecord]:
    """Read the records of ``split`` ("train" / "test") under the iHarmony4 ``root``.

    Args:
        root: the iHarmony4 folder (holding ``HAdobe5k/`` etc. and the lists).
        split: list name, e.g. "train" or "test".
        subsets: keep only these subsets (in list order); None keeps all found.
        mask_suffix: extension of the mask files (".png" in iHarmony4).
    """
    root = Path(root)
    if not root.is_dir():
        raise RaihaDataError(
            f"iHarmony4 root {root} does not exist; set data.root=/path/to/iHarmony4"
        )
    ihd_list = root / f"IHD_{split}.txt"
    if ihd_list.is_file():
        records = _read_ihd_list(ihd_list, mask_suffix)
        source = str(ihd_list)
    else:
        subset_lists = _find_subset_lists(root, split)
        if not subset_lists:
            raise RaihaDataError(
                f"no '{split}' split list under {root}: looked for {ihd_list}, "
                f"{root}/<Subset>/<Subset>_{split}.txt and {root}/<Subset>_{split}.txt; "
                "check data.root or copy the iHarmony4 lists there"
            )
        records = [
            record
            for subset, list_path in subset_lists.items()
            for record in _read_subset_list(list_path, subset, mask_suffix)
        ]
        source = ", ".join(str(path) for path in subset_lists.values())
    if subsets is None:
        return records
    available = list(dict.fromkeys(record.subset for record in records))
    unknown = [name for name in subsets if name not in available]
    if unknown:
        raise RaihaDataError(
            f"subset(s) {unknown} not in the '{split}' list ({source}); available: {available}"
        )
    wanted = set(subsets)
    return [record for record in records if record.subset in wanted]


def write_split(root: str | Path, split: str, records: Sequence[HarmonizationRecord]) -> Path:
    """Write ``<root>/IHD_<split>.txt`` (one composite path a line) atomically; returns its path."""
    text = "".join(f"{record.composite}\n" for record in records)
    return atomic_write_text(Path(root) / f"IHD_{split}.txt", text)

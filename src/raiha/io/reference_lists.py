"""RAHarmony4 reference lists in the authors' JSONL format, one composite a line.

``{"input": "HAdobe5k/composite_images/a3630_1_5.jpg", "mask": "HAdobe5k/masks/a3630_1.png",
"refs": ["HCOCO/real_images/c437938.jpg"]}``; paths are relative to the iHarmony4 root.
Other keys (e.g. "scores") are kept in ``extra`` and written back after the three above.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raiha.io.atomic_io import atomic_write_text
from raiha.io.errors import RaihaDataError

REQUIRED_KEYS = ("input", "mask", "refs")


@dataclass
class ReferenceEntry:
    """One composite (``input``), its mask and its retrieved reference images."""

    input: str
    mask: str
    refs: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this entry: input, mask, refs, then the extra keys."""
        return {"input": self.input, "mask": self.mask, "refs": list(self.refs), **self.extra}


def _parse_line(path: Path, number: int, line: str) -> ReferenceEntry:
    """Parse line ``number`` of ``path``; malformed lines raise RaihaDataError naming both."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as error:
        raise RaihaDataError(
            f"{path}:{number}: not valid JSON ({error}); fix or regenerate the list"
        ) from error
    if not isinstance(obj, dict):
        raise RaihaDataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise RaihaDataError(
            f"{path}:{number}: missing key(s) {missing}; each line needs {list(REQUIRED_KEYS)}"
        )
    refs = obj["refs"]
    if not isinstance(refs, list) or not all(isinstance(ref, str) for ref in refs):
        raise RaihaDataError(
            f"{path}:{number}: 'refs' must be a list of path strings, got {refs!r}"
        )
    if not isinstance(obj["input"], str) or not isinstance(obj["mask"], str):
        raise RaihaDataError(f"{path}:{number}: 'input' and 'mask' must be path strings")
    extra = {key: value for key, value in obj.items() if key not in REQUIRED_KEYS}
    return ReferenceEntry(input=obj["input"], mask=obj["mask"], refs=list(refs), extra=extra)


def read_reference_list(path: str | Path) -> list[ReferenceEntry]:
    """Read a JSONL reference list; blank lines are skipped, duplicates of an input are errors."""
    path = Path(path)
    if not path.is_file():
        raise RaihaDataError(
            f"reference list {path} not found; build it with the retrieval command or fix the path"
        )
    entries: list[ReferenceEntry] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        entry = _parse_line(path, number, line)
        if entry.input in first_line_of:
            raise RaihaDataError(
                f"{path}:{number}: composite {entry.input} is listed again (first at line "
                f"{first_line_of[entry.input]}); keep one line per composite"
            )
        first_line_of[entry.input] = number
        entries.append(entry)
    return entries


def write_reference_list(path: str | Path, entries: Sequence[ReferenceEntry]) -> Path:
    """Write ``entries`` as JSONL atomically; returns the path."""
    text = "".join(json.dumps(entry.to_json()) + "\n" for entry in entries)
    return atomic_write_text(path, text)


def reference_map(entries: Sequence[ReferenceEntry]) -> dict[str, list[str]]:
    """Map composite path -> its reference paths (list order kept)."""
    refs_by_input: dict[str, list[str]] = {}
    for entry in entries:
        if entry.input in refs_by_input:
            raise RaihaDataError(
                f"composite {entry.input} appears twice in the reference entries; keep one"
            )
        refs_by_input[entry.input] = list(entry.refs)
    return refs_by_input

"""A folder of another method's harmonized images, matched to the test composites by name.

Files are found recursively and matched by stem: ``HAdobe5k/composite_images/a0002_1_4.jpg``
is scored against any ``a0002_1_4.<image suffix>`` under the folder (``name_suffix`` strips a
tag some codebases append, e.g. PCT-Net's ``_harmonized``). Every test composite needs
exactly one prediction; missing ones are an error that lists them, extra files are an error
(``on_extra=error``) or a warning (``on_extra=ignore``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from raiha.evaluation.image_scoring import Resolution, resize_image, score_prediction
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import check_same_size, load_rgb, load_soft_mask
from raiha.io.split_lists import HarmonizationRecord
from raiha.metrics.protocols import ScoringProtocol

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
EXTRA_POLICIES = ("error", "ignore")
SIZE_POLICIES = ("refuse", "resize")
LISTED = 10


def _listing(names: Sequence[str]) -> str:
    shown = "\n  ".join(names[:LISTED])
    more = f"\n  ... and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return f"\n  {shown}{more}"


def index_predictions(folder: str | Path, name_suffix: str = "") -> dict[str, Path]:
    """Stem (without ``name_suffix``) -> image file, for every image under ``folder``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RaihaDataError(f"predictions folder {folder} not found; pass predictions=/path/to/outputs")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = path.stem.removesuffix(name_suffix) if name_suffix else path.stem
        if stem in found:
            raise RaihaDataError(f"two predictions for {stem}: {found[stem]} and {path}; keep one")
        found[stem] = path
    return found


def match_predictions(
    records: Sequence[HarmonizationRecord], index: dict[str, Path], on_extra: str = "error"
) -> list[Path]:
    """The prediction of every record, in record order; raises on missing (and extra) files."""
    if on_extra not in EXTRA_POLICIES:
        raise ValueError(f"on_extra must be one of {EXTRA_POLICIES}, got {on_extra!r}")
    wanted = {Path(record.composite).stem: record for record in records}
    missing = [record.composite for stem, record in wanted.items() if stem not in index]
    if missing:
        raise RaihaDataError(f"{len(missing)} of {len(wanted)} test composites have no prediction:{_listing(missing)}")
    extra = sorted(str(path) for stem, path in index.items() if stem not in wanted)
    if extra and on_extra == "error":
        raise RaihaDataError(
            f"{len(extra)} predictions match no test composite (pass on_extra=ignore to skip them):{_listing(extra)}"
        )
    if extra:
        log.warning("%d predictions match no test composite and are ignored:%s", len(extra), _listing(extra))
    return [index[Path(record.composite).stem] for record in records]


class ScoredPredictions(Dataset[dict[str, object]]):
    """One scored row per record; ``DataLoader`` workers decode and score one image at a time each."""

    def __init__(
        self,
        root: Path,
        records: Sequence[HarmonizationRecord],
        predictions: Sequence[Path],
        protocol: ScoringProtocol,
        resolution: Resolution,
        *,
        background: str = "composite",
        on_size_mismatch: str = "refuse",
    ) -> None:
        if on_size_mismatch not in SIZE_POLICIES:
            raise ValueError(f"on_size_mismatch must be one of {SIZE_POLICIES}, got {on_size_mismatch!r}")
        self.root, self.records, self.predictions = root, list(records), list(predictions)
        self.protocol, self.resolution, self.background = protocol, resolution, background
        self.on_size_mismatch = on_size_mismatch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        record, prediction_path = self.records[index], self.predictions[index]
        composite_path, mask_path = self.root / record.composite, self.root / record.mask
        composite, real = load_rgb(composite_path), load_rgb(self.root / record.real)
        mask = load_soft_mask(mask_path)
        size = (composite.shape[1], composite.shape[0])
        check_same_size(composite_path, size, mask_path, (mask.shape[1], mask.shape[0]), "mask")
        check_same_size(composite_path, size, self.root / record.real, (real.shape[1], real.shape[0]), "real image")
        prediction = load_rgb(prediction_path)
        prediction = self._fit(prediction, size, prediction_path, composite_path)
        scores = score_prediction(
            prediction, real, mask, self.protocol, self.resolution, background=self.background, composite=composite
        )
        return {"name": record.composite, "subset": record.subset, "prediction": str(prediction_path), **scores}

    def _fit(self, prediction: np.ndarray, size: tuple[int, int], path: Path, composite_path: Path) -> np.ndarray:
        if (prediction.shape[1], prediction.shape[0]) == size:
            return prediction
        if self.on_size_mismatch == "refuse":
            raise RaihaDataError(
                f"prediction {path} is {prediction.shape[1]}x{prediction.shape[0]} but composite {composite_path} "
                f"is {size[0]}x{size[1]}; pass on_size_mismatch=resize to resize predictions to the composite"
            )
        return resize_image(prediction, size)


__all__ = ["ScoredPredictions", "index_predictions", "match_predictions"]

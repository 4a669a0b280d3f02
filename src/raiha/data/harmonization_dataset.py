"""The iHarmony4 harmonization dataset: composite, mask and real image at the training size."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from raiha.data.resize_cache import MANIFEST_NAME, cached_path, load_cached
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import check_same_size, load_mask, load_rgb, resize_mask, resize_rgb
from raiha.io.split_lists import IHARMONY4_SUBSETS, HarmonizationRecord
from raiha.io.tensors import rgb_to_tensor

MAX_LISTED_MISSING = 5


def default_subset_names(records: Sequence[HarmonizationRecord]) -> list[str]:
    """The iHarmony4 subsets present in ``records`` in canonical order, then any others as they appear."""
    present = list(dict.fromkeys(record.subset for record in records))
    return [name for name in IHARMONY4_SUBSETS if name in present] + [
        name for name in present if name not in IHARMONY4_SUBSETS
    ]


class HarmonizationDataset(Dataset[dict[str, Any]]):
    """Composites with their masks and real images, resized to ``image_size`` x ``image_size``.

    Each item is a dict: ``composite`` / ``real`` float [3, S, S] in [-1, 1], ``mask`` float
    [1, S, S] in {0, 1}, ``subset`` (str), ``subset_idx`` (index into ``subset_names``),
    ``index`` and ``composite_path`` (relative to the root).

    Args:
        root: the iHarmony4 folder the record paths are relative to.
        records: from ``read_split``.
        image_size: the square size S (256 in the paper).
        subset_names: order of ``subset_idx``; default: iHarmony4 order of the subsets present.
        rebuild_composite: paste the composite's foreground on the real image,
            ``comp * mask + real * (1 - mask)`` after resizing (the paper protocol, SPEC 6).
        cache_dir: a folder built by ``build_resized_cache`` at ``image_size``; read instead of the originals.
        validate: check at construction that every file to be read exists.
    """

    def __init__(
        self,
        root: str | Path,
        records: Sequence[HarmonizationRecord],
        image_size: int = 256,
        subset_names: Sequence[str] | None = None,
        rebuild_composite: bool = True,
        cache_dir: str | Path | None = None,
        validate: bool = True,
    ) -> None:
        self.root = Path(root)
        self.records = list(records)
        self.image_size = image_size
        self.subset_names = (
            list(subset_names) if subset_names is not None else default_subset_names(self.records)
        )
        self.rebuild_composite = rebuild_composite
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        unknown = sorted({record.subset for record in self.records} - set(self.subset_names))
        if unknown:
            raise RaihaDataError(
                f"records of subset(s) {unknown} are not in subset_names {self.subset_names}"
            )
        self._subset_index = {name: index for index, name in enumerate(self.subset_names)}
        self._paths: dict[str, Path] = {}  # relative -> the file read (path parsing is costly per sample)
        self._cached_files = {
            relative for record in self.records for relative in (record.composite, record.mask, record.real)
        } if self.cache_dir is not None else set()
        if self.cache_dir is not None:
            self._check_cache()
        if validate:
            self._check_files_exist()

    def _check_cache(self) -> None:
        """The cache must be complete and built at ``image_size``."""
        assert self.cache_dir is not None
        manifest_path = self.cache_dir / MANIFEST_NAME
        if not manifest_path.is_file():
            raise RaihaDataError(
                f"resize cache {self.cache_dir} has no {MANIFEST_NAME} (incomplete); run build_resized_cache again"
            )
        cache_size = json.loads(manifest_path.read_text(encoding="utf-8")).get("size")
        if cache_size != self.image_size:
            raise RaihaDataError(
                f"resize cache {self.cache_dir} holds {cache_size}px images but image_size is "
                f"{self.image_size}; build a cache at {self.image_size} or drop cache_dir"
            )

    def _path(self, relative: str) -> Path:
        """The file actually read for ``relative``: the cached copy or the original."""
        path = self._paths.get(relative)
        if path is None:
            path = (
                cached_path(self.cache_dir, relative)
                if self.cache_dir is not None
                else self.root / relative
            )
            self._paths[relative] = path
        return path

    def load_rgb_at_size(self, relative: str) -> np.ndarray:
        """uint8 [S, S, 3] of any image under the root: from the cache when it holds it, else
        decoded and resized like the cache (``resize_rgb``), so both give the same pixels."""
        if relative in self._cached_files:
            return load_cached(self._path(relative), self.image_size, is_mask=False)
        return resize_rgb(load_rgb(self.root / relative), self.image_size)  # [S, S, 3]

    def _check_files_exist(self) -> None:
        """Stat every file once; one error lists the first few missing ones and their count."""
        relatives = dict.fromkeys(
            relative
            for record in self.records
            for relative in (record.composite, record.mask, record.real)
        )
        missing = [
            str(self._path(relative))
            for relative in relatives
            if not self._path(relative).is_file()
        ]
        if missing:
            shown = "\n  ".join(missing[:MAX_LISTED_MISSING])
            raise RaihaDataError(
                f"{len(missing)} of {len(relatives)} dataset files are missing, e.g.:\n  {shown}\n"
                "check data.root, the split list, or rebuild the resize cache"
            )

    def __len__(self) -> int:
        return len(self.records)

    def _load_arrays(
        self, record: HarmonizationRecord
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Composite, real uint8 [S, S, 3] and mask bool [S, S], with size and emptiness checks."""
        composite_path, mask_path, real_path = (
            self._path(record.composite),
            self._path(record.mask),
            self._path(record.real),
        )
        if self.cache_dir is not None:  # already at size S, no decoder
            composite = load_cached(composite_path, self.image_size, is_mask=False)  # [S, S, 3]
            mask = load_cached(mask_path, self.image_size, is_mask=True)  # [S, S]
            real = load_cached(real_path, self.image_size, is_mask=False)  # [S, S, 3]
        else:
            composite = load_rgb(composite_path)  # [H, W, 3]
            mask = load_mask(mask_path)  # [H, W]
            real = load_rgb(real_path)  # [H, W, 3]
        composite_size = (composite.shape[1], composite.shape[0])
        check_same_size(
            composite_path, composite_size, mask_path, (mask.shape[1], mask.shape[0]), "mask"
        )
        check_same_size(
            composite_path, composite_size, real_path, (real.shape[1], real.shape[0]), "real image"
        )
        if not mask.any():
            raise RaihaDataError(
                f"mask {mask_path} is empty (no pixel above the threshold); fix the mask or drop "
                f"{record.composite} from the split list"
            )
        size = self.image_size
        composite, real = resize_rgb(composite, size), resize_rgb(real, size)  # [S, S, 3]
        mask = resize_mask(mask, size)  # [S, S]
        if not mask.any():
            raise RaihaDataError(
                f"mask {mask_path} is empty after resizing to {size}x{size} (the object is too small); "
                f"drop {record.composite} from the split list or train at a larger size"
            )
        return composite, mask, real

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        composite, mask, real = self._load_arrays(record)
        if self.rebuild_composite:
            composite = np.where(mask[:, :, None], composite, real)  # [S, S, 3]
        return {
            "composite": rgb_to_tensor(composite),  # [3, S, S]
            "mask": torch.from_numpy(mask).float().unsqueeze(0),  # [1, S, S]
            "real": rgb_to_tensor(real),  # [3, S, S]
            "subset": record.subset,
            "subset_idx": self._subset_index[record.subset],
            "index": index,
            "composite_path": record.composite,
        }

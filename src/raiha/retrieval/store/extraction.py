"""The one extraction path: decode, resize, batch, extract and skip or name unreadable images.

Every consumer of content + HSV grids computed from image files goes through
:class:`ImageFeatureBatcher`: the gallery store builder (its shards and its PCA fit), the
composites searched without a store (:mod:`raiha.retrieval.list_search`) and the photo
folders indexed at inference (through the builder). Images are decoded with
:mod:`raiha.io.image_io`, resized (PIL bilinear, antialiased) to ``image_size`` x
``image_size`` and mapped to ``[-1, 1]``; the content extractor and the HSV histograms then
run on the extractor's grid. An unreadable image either stops the job with an error that
names the file and the remedy (``"raise"``), or is left out of the batch and recorded with
its reason (``"skip"``: also logged; ``"ignore"``: recorded silently).

``precision`` (``retrieval.extraction_precision``) runs the content extractor's forward
under bf16 autocast (``"bf16"``), in fp32 (``"fp32"``), or picks bf16 only on a CUDA device
with native bf16 (``"auto"``, :func:`raiha.utils.precision.bf16_support`); the grids are
cast back to float32 before anything else touches them, so stores keep their format. The
HSV histograms always run in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import torch
from torch import Tensor

from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_rgb, resize_rgb
from raiha.io.tensors import rgb_to_tensor
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig, hsv_patch_histograms
from raiha.utils.precision import bf16_support, resolve_device_type

log = logging.getLogger(__name__)

Unreadable = Literal["raise", "skip", "ignore"]
EXTRACTION_PRECISIONS = ("fp32", "bf16", "auto")
GALLERY_REMEDY = (
    "fix or remove it, or pass skip_unreadable=True to skip it (recorded in the store manifest)"
)


def load_gallery_image(path: Path, image_size: int) -> Tensor:
    """Decode ``path`` and resize it to ``[3, image_size, image_size]`` in ``[-1, 1]``."""
    return rgb_to_tensor(resize_rgb(load_rgb(path), image_size))  # [3, S, S]


def check_extraction_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`EXTRACTION_PRECISIONS`, else a ValueError naming the setting."""
    if precision not in EXTRACTION_PRECISIONS:
        raise ValueError(
            f"retrieval.extraction_precision must be one of {EXTRACTION_PRECISIONS}, got {precision!r}"
        )
    return precision


def resolve_extraction_precision(precision: str, device: str | torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` is bf16 only on a CUDA device with native bf16."""
    if check_extraction_precision(precision) != "auto":
        return precision
    if resolve_device_type(str(device)) != "cuda":
        return "fp32"
    native, reason = bf16_support("cuda")
    log.info("extraction precision auto -> %s: %s", "bf16" if native else "fp32", reason)
    return "bf16" if native else "fp32"


@torch.inference_mode()
def extract_features(
    images: Tensor,
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    device: torch.device,
    precision: str = "fp32",
) -> tuple[Tensor, Tensor]:
    """Content ``[B, L, C]`` and appearance ``[B, L, D]`` (float16, CPU) of ``images`` ``[B, 3, S, S]``.

    ``precision``: ``"fp32"`` or ``"bf16"`` (the extractor's forward under bf16 autocast).
    """
    grid = extractor.grid_size(images.shape[-1])
    # the histograms run on the device too (88 ms per 448 px image on one CPU core)
    images = images.to(device)
    if resolve_extraction_precision(precision, device) == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            content = extractor(images)  # [B, h, w, C] (bf16 where autocast cast it)
        content = content.float()  # back to float32 before storage or normalisation
    else:
        content = extractor(images)  # [B, h, w, C]
    if tuple(content.shape[1:3]) != grid:
        raise ValueError(
            f"extractor {extractor.name} returned a {tuple(content.shape[1:3])} grid, expected {grid}"
        )
    appearance = hsv_patch_histograms(images, grid, hsv_config)  # [B, h, w, D]
    batch = images.shape[0]
    content = content.reshape(batch, grid[0] * grid[1], -1)  # [B, L, C]
    appearance = appearance.reshape(batch, grid[0] * grid[1], -1)  # [B, L, D]
    return content.to("cpu", torch.float16), appearance.to("cpu", torch.float16)


def extractor_device(
    extractor: DenseFeatureExtractor, device: str | torch.device | None
) -> torch.device:
    """``device``, or where the extractor's first parameter lives (CPU for weight-free ones)."""
    if device is None:
        device = next(iter(extractor.parameters()), torch.empty(0)).device
    return torch.device(device)


@dataclass
class ExtractedBatch:
    """One batch: the readable images' grids in input order, and the unreadable ones.

    ``rows[i]`` is the row of ``names[i]`` in ``content`` ``[n, L, C]`` and ``appearance``
    ``[n, L, D]`` (float16, CPU), or None when it was skipped (``skipped`` holds
    ``{"path": name, "error": reason}``).
    """

    names: list[str]
    rows: list[int | None]
    content: Tensor
    appearance: Tensor
    skipped: list[dict[str, str]]

    @property
    def kept(self) -> list[str]:
        """The names of the readable images (one per row)."""
        return [name for name, row in zip(self.names, self.rows) if row is not None]


class ImageFeatureBatcher:
    """Content and HSV grids of image files, ``batch_size`` images per forward pass.

    Use as a context manager (it holds the decoding threads).

    Args:
        extractor: the content extractor (its grid is also the HSV grid).
        hsv_config: the HSV binning.
        image_size: images are resized to this square size before both extractors.
        device: where the extractor runs (default: the extractor's device).
        batch_size: images per forward pass.
        num_workers: threads decoding images.
        image_root: folder the names are relative to (None: names are paths).
        what: how errors call an image (``"gallery image"``, ``"composite"``).
        remedy: what an error about an unreadable image tells the user to do.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (see the module docstring); the
            resolved choice is ``self.precision``.
    """

    def __init__(
        self,
        extractor: DenseFeatureExtractor,
        hsv_config: HsvHistogramConfig,
        image_size: int,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 16,
        num_workers: int = 2,
        image_root: str | Path | None = None,
        what: str = "gallery image",
        remedy: str = GALLERY_REMEDY,
        precision: str = "fp32",
    ) -> None:
        self.extractor = extractor
        self.hsv_config = hsv_config
        self.image_size = image_size
        self.device = extractor_device(extractor, device)
        self.precision = resolve_extraction_precision(precision, self.device)
        self.batch_size = batch_size
        self.num_workers = max(1, num_workers)
        self.root = Path(image_root) if image_root is not None else None
        self.what, self.remedy = what, remedy
        self.grid = extractor.grid_size(image_size)
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ImageFeatureBatcher:
        self._pool = ThreadPoolExecutor(self.num_workers)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def file(self, name: str) -> Path:
        """The file of ``name``."""
        return self.root / name if self.root is not None else Path(name)

    def empty(self) -> tuple[Tensor, Tensor]:
        """Content ``[0, L, C]`` and appearance ``[0, L, D]`` float16 (no readable image)."""
        cells = self.grid[0] * self.grid[1]
        content = torch.zeros(0, cells, self.extractor.feature_dim, dtype=torch.float16)
        return content, torch.zeros(0, cells, self.hsv_config.dim, dtype=torch.float16)

    def batches(
        self, names: Sequence[str], unreadable: Unreadable = "raise"
    ) -> Iterator[ExtractedBatch]:
        """The batches of ``names`` in order (``unreadable``: see the module docstring)."""
        if self._pool is None:
            raise RuntimeError("ImageFeatureBatcher.batches needs `with ImageFeatureBatcher(...)`")
        for start in range(0, len(names), self.batch_size):
            yield self._batch(list(names[start : start + self.batch_size]), unreadable)

    def _try_load(self, name: str) -> tuple[Tensor | None, str]:
        """The image ``[3, S, S]``, or None and the reason it cannot be read."""
        try:
            return load_gallery_image(self.file(name), self.image_size), ""
        except (RaihaDataError, OSError) as error:
            return None, str(error)

    def _batch(self, names: list[str], unreadable: Unreadable) -> ExtractedBatch:
        assert self._pool is not None
        loaded = list(self._pool.map(self._try_load, names))
        images: list[Tensor] = []
        rows: list[int | None] = []
        skipped: list[dict[str, str]] = []
        for name, (image, error) in zip(names, loaded):
            if image is not None:
                rows.append(len(images))
                images.append(image)
                continue
            file = self.file(name)
            if unreadable == "raise":
                raise RaihaDataError(f"{self.what} {file} cannot be read ({error}); {self.remedy}")
            if unreadable == "skip":
                log.warning("skipping unreadable %s %s: %s", self.what, file, error)
            rows.append(None)
            skipped.append({"path": name, "error": error})
        if images:
            content, appearance = extract_features(
                torch.stack(images), self.extractor, self.hsv_config, self.device, self.precision
            )  # [n, L, C], [n, L, D]
        else:
            content, appearance = self.empty()
        return ExtractedBatch(names, rows, content, appearance, skipped)

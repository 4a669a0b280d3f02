"""What search needs from a gallery: per-image patch features, fetched in blocks.

:class:`raiha.retrieval.store.feature_store.FeatureStore` (on disk, fp16) and
:class:`InMemoryGallery` (tests, benchmarks) both satisfy :class:`GalleryFeatures`.
Rows are flattened grids: image i has ``L = h * w`` patches in row-major order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class GalleryFeatures(Protocol):
    """Read access to the content and appearance patch features of N gallery images."""

    @property
    def image_paths(self) -> list[str]: ...

    @property
    def grid_size(self) -> tuple[int, int]: ...

    def __len__(self) -> int: ...

    def content_rows(self, indices: Sequence[int]) -> Tensor:
        """``[n, L, C]`` content features of the images ``indices`` (stored dtype)."""
        ...

    def appearance_rows(self, indices: Sequence[int]) -> Tensor:
        """``[n, L, D]`` appearance histograms of the images ``indices`` (stored dtype)."""
        ...


@dataclass
class InMemoryGallery:
    """A gallery held in tensors: ``content`` ``[N, L, C]``, ``appearance`` ``[N, L, D]``."""

    content: Tensor
    appearance: Tensor
    paths: list[str]
    grid: tuple[int, int]

    def __post_init__(self) -> None:
        count, patches = self.content.shape[:2]
        if self.appearance.shape[:2] != (count, patches) or len(self.paths) != count:
            raise ValueError(
                f"gallery parts disagree: content {tuple(self.content.shape)}, appearance "
                f"{tuple(self.appearance.shape)}, {len(self.paths)} paths"
            )
        if self.grid[0] * self.grid[1] != patches:
            raise ValueError(f"grid {self.grid} does not have {patches} patches")

    @property
    def image_paths(self) -> list[str]:
        return self.paths

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.grid

    def __len__(self) -> int:
        return self.content.shape[0]

    def content_rows(self, indices: Sequence[int]) -> Tensor:
        return self.content[torch.as_tensor(list(indices), dtype=torch.long)]

    def appearance_rows(self, indices: Sequence[int]) -> Tensor:
        return self.appearance[torch.as_tensor(list(indices), dtype=torch.long)]

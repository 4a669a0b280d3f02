"""Semantic grids for SGF read from feature stores instead of recomputing a frozen ViT.

The retrieval pipeline already stores the content grid of every composite and every
gallery (real) image; training looks them up by their path relative to the dataset
root. Augmented references crop and resample the real image's cached grid the same
way as the image (see ``augmented_reference.apply_crop_box``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch
from torch import Tensor


class ContentStore(Protocol):
    """What is needed of a feature store (``raiha.retrieval.store.feature_store.FeatureStore``)."""

    @property
    def image_paths(self) -> list[str]: ...

    @property
    def grid_size(self) -> tuple[int, int]: ...

    def source_content(self, index: int) -> Tensor:
        """``[h*w, C]`` content in the extractor's space (compressed stores map their codes
        back through their basis)."""
        ...


class SemanticGridLookup:
    """``grid(path) -> [C, h, w]`` float32 from one or more content stores."""

    def __init__(self, stores: Iterable[ContentStore]) -> None:
        self.stores = list(stores)
        if not self.stores:
            raise ValueError("SemanticGridLookup needs at least one feature store")
        self._where: dict[str, tuple[int, int]] = {}
        for store_index, store in enumerate(self.stores):
            for image_index, path in enumerate(store.image_paths):
                self._where.setdefault(path, (store_index, image_index))
        sizes = {tuple(store.grid_size) for store in self.stores}
        if len(sizes) != 1:
            raise ValueError(f"feature stores disagree on the grid size: {sorted(sizes)}")
        self.grid_size: tuple[int, int] = sizes.pop()

    def __contains__(self, path: str) -> bool:
        return path in self._where

    def __len__(self) -> int:
        return len(self._where)

    def grid(self, path: str) -> Tensor:
        """The content grid of ``path`` (relative to the dataset root), ``[C, h, w]`` float32."""
        if path not in self._where:
            raise KeyError(
                f"no semantic grid for {path}: it is not in the feature stores "
                f"({len(self._where)} images); rebuild them with python -m raiha.retrieve"
            )
        store_index, image_index = self._where[path]
        store = self.stores[store_index]
        # compressed stores (pca_int8: composites and gallery) map their k-dim codes back to
        # the extractor's C channels, so SGF sees C channels whatever the compression
        rows = store.source_content(image_index).float()  # [h*w, C]
        height, width = self.grid_size
        # a channels-last view, no copy: the values are what matter (collate stacks anyway)
        return rows.t().reshape(rows.shape[1], height, width)  # [C, h, w]

    @property
    def channels(self) -> int:
        first_path = next(iter(self._where))
        return int(self.grid(first_path).shape[0])


def zeros_like_grid(channels: int, grid_size: tuple[int, int]) -> Tensor:
    """A placeholder grid for a missing reference (its cells are masked out as keys)."""
    return torch.zeros(channels, *grid_size)

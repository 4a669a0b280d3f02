"""Small on-disk feature stores for tests, and the store's semantic-grid read as it was
before the one-image fast path (the reference the fast path must equal)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from raiha.retrieval.store.compression import CompressionConfig, FeatureCompressor
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter


def write_random_store(
    folder: Path,
    paths: Sequence[str],
    spec: str,
    *,
    grid: tuple[int, int] = (3, 3),
    channels: int = 24,
    shard_size: int = 16,
    seed: int = 0,
) -> FeatureStore:
    """A finished store of ``spec`` compression over ``paths``: random low-rank content
    ``[N, L, channels]`` (so a PCA basis keeps most of it) and non-negative histograms."""
    generator = torch.Generator().manual_seed(seed)
    cells = grid[0] * grid[1]
    factors = torch.randn(len(paths), cells, 6, generator=generator)
    content = factors @ torch.randn(6, channels, generator=generator)  # [N, L, C]
    content += 0.1 * torch.randn(len(paths), cells, channels, generator=generator)
    appearance = torch.rand(len(paths), cells, 10, generator=generator)  # [N, L, D]
    config = CompressionConfig.parse(spec)
    names = list(paths)
    writer = FeatureStoreWriter(
        folder, key={"test": spec, "seed": seed}, image_paths=names, grid_size=grid,
        content_dim=channels, appearance_dim=10, shard_size=shard_size, compression=config,
    )  # fmt: skip
    if writer.compressor is None:
        writer.set_compressor(FeatureCompressor.fit(config, content))
    for shard in writer.pending_shards():
        rows = slice(shard * shard_size, (shard + 1) * shard_size)
        writer.write_shard(shard, content[rows], appearance[rows], names[rows])
    return writer.finish()


def old_source_content(store: FeatureStore, index: int) -> Tensor:
    """``FeatureStore.source_content`` before the fast path: the generic row read
    (``content``: gather into a new array, decode), ``.float()``, then the basis."""
    rows = store.content(index).float()  # [h*w, k or C]
    basis = store.compressor.basis  # [k, C] or None
    if basis is None or rows.shape[-1] == basis.shape[1]:
        return rows
    return rows @ basis  # [h*w, C]


class OldPathStore:
    """A store whose ``source_content`` is :func:`old_source_content` (for SemanticGridLookup)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    @property
    def image_paths(self) -> list[str]:
        return self.store.image_paths

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.store.grid_size

    def source_content(self, index: int) -> Tensor:
        return old_source_content(self.store, index)

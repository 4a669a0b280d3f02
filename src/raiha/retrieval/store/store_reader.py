"""Reads a finished feature store (memory-mapped shards, decoded rows); see
:mod:`raiha.retrieval.store.feature_store` for the layout.

Shards are memory-mapped read-only once per store object (so once per data loader worker);
one image's rows are read as views of the maps (see :meth:`FeatureStore.source_content`).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.store.compression import CompressionConfig, bytes_per_cell
from raiha.retrieval.store.store_format import (
    FeatureStoreMismatchError,
    load_compressor,
    mismatch_message,
    read_manifest,
    shard_file,
)


class FeatureStore:
    """Read-only view of a finished store; satisfies :class:`raiha.retrieval.store.gallery.GalleryFeatures`."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.key: dict[str, Any] = manifest["key"]
        shards = [manifest["shards"][str(s)] for s in range(manifest["num_shards"])]
        self._image_paths = [path for shard in shards for path in shard["paths"]]
        self.skipped: list[dict[str, str]] = [item for shard in shards for item in shard["skipped"]]
        counts = np.array([len(shard["paths"]) for shard in shards], dtype=np.int64)
        self._shard_starts = np.concatenate([[0], np.cumsum(counts)])  # [num_shards + 1]
        self._shard_start_list: list[int] = self._shard_starts.tolist()  # for one-image reads
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self.compressor = load_compressor(folder, manifest)

    @classmethod
    def open(cls, path: str | Path, *, expected_key: dict[str, Any] | None = None) -> FeatureStore:
        """Open a finished store; every field of ``expected_key`` (optional) must match its key."""
        folder = Path(path)
        manifest = read_manifest(folder)
        if expected_key is not None:
            wanted = json.loads(json.dumps(expected_key))  # tuples -> lists, as stored
            stored = {k: manifest["key"].get(k) for k in wanted}
            if stored != wanted:
                raise FeatureStoreMismatchError(mismatch_message(folder, stored, wanted))
        done = len(manifest["shards"])
        if done < manifest["num_shards"]:
            raise ValueError(
                f"feature store {folder} is incomplete ({done} of {manifest['num_shards']} shards); "
                f"run build_feature_store again with the same arguments to resume"
            )
        return cls(folder, manifest)

    @property
    def image_paths(self) -> list[str]:
        return self._image_paths

    @property
    def grid_size(self) -> tuple[int, int]:
        return (int(self.manifest["grid_size"][0]), int(self.manifest["grid_size"][1]))

    @property
    def content_dim(self) -> int:
        return int(self.manifest["content_dim"])

    @property
    def appearance_dim(self) -> int:
        return int(self.manifest["appearance_dim"])

    @property
    def source_content_dim(self) -> int:
        """C of the extractor (``content_dim`` is the stored, possibly projected, k)."""
        return int(self.manifest.get("source_content_dim", self.content_dim))

    @property
    def compression(self) -> CompressionConfig:
        return self.compressor.config

    @property
    def bytes_per_image(self) -> int:
        """Stored bytes of one image's features (content + appearance, codes and scales)."""
        cell = bytes_per_cell(self.compression, self.source_content_dim, self.appearance_dim)
        return self.grid_size[0] * self.grid_size[1] * cell

    def compress_query(self, query: RetrievalQuery) -> RetrievalQuery:
        """The query projected and quantised as the gallery is (unchanged for fp16 stores)."""
        return self.compressor.compress_query(query)

    def __len__(self) -> int:
        return len(self._image_paths)

    def _array(self, kind: str, shard: int) -> np.ndarray:
        """Shard ``shard`` of ``kind``, memory-mapped read-only on first use (shared pages: no
        memory charged per worker, unlike a copy-on-write map)."""
        if (kind, shard) not in self._arrays:
            self._arrays[(kind, shard)] = np.load(
                shard_file(self.folder, kind, shard), mmap_mode="r"
            )
        return self._arrays[(kind, shard)]

    def _image_arrays(self, kind: str, index: int) -> dict[str, np.ndarray]:
        """Image ``index``'s stored arrays of ``kind`` (codes and scales), views into the shards."""
        if not 0 <= index < len(self):
            raise IndexError(
                f"feature store {self.folder} has {len(self)} images; asked for {index}"
            )
        shard = bisect_right(self._shard_start_list, index) - 1
        local = index - self._shard_start_list[shard]
        return {
            file_kind: self._array(file_kind, shard)[local]  # [L, dim] or [L]: no copy
            for file_kind in self.compressor.kinds
            if file_kind in (kind, f"{kind}_scale")
        }

    def _rows(self, kind: str, indices: Sequence[int]) -> Tensor:
        index_array = np.asarray(indices, dtype=np.int64)  # [n]
        if index_array.size and (index_array.min() < 0 or index_array.max() >= len(self)):
            raise IndexError(
                f"feature store {self.folder} has {len(self)} images; asked for {indices}"
            )
        shard_of = np.searchsorted(self._shard_starts, index_array, side="right") - 1  # [n]
        raw: dict[str, np.ndarray] = {}
        for file_kind in (k for k in self.compressor.kinds if k in (kind, f"{kind}_scale")):
            template = self._array(file_kind, 0)  # [n_0, L, dim] or [n_0, L]
            out = np.empty((index_array.size, *template.shape[1:]), dtype=template.dtype)
            for shard in np.unique(shard_of):
                selected = np.nonzero(shard_of == shard)[0]
                local = index_array[selected] - self._shard_starts[shard]
                out[selected] = self._array(file_kind, int(shard))[local]
            raw[file_kind] = out
        return self.compressor.decode(kind, raw)  # [n, L, dim]

    def content_rows(self, indices: Sequence[int]) -> Tensor:
        return self._rows("content", indices)

    def appearance_rows(self, indices: Sequence[int]) -> Tensor:
        return self._rows("appearance", indices)

    def content(self, index: int) -> Tensor:
        """``[h*w, content_dim]`` content features of image ``index`` (decoded)."""
        return self.content_rows([index])[0]

    def source_content(self, index: int) -> Tensor:
        """``[h*w, source_content_dim]`` content of image ``index`` in the extractor's space.

        Projected stores (``pca_int8``, ``random_int8``) map their k-dim codes back with
        the basis (an approximation holding the kept energy); other stores return
        :meth:`content`. SGF semantic grids use this, so a model sees the same channel
        count whatever the store's compression.

        Equal (``torch.equal``) to ``content(index).float() @ basis`` (the generic row read)
        but reads the image's rows directly (no index arrays, gathers or extra float copy):
        the semantic grids of every training sample come from here. A new tensor: the
        caller may modify it.
        """
        arrays = self._image_arrays("content", int(index))
        rows = self.compressor.decode_float32("content", arrays)  # [h*w, k or C]
        basis = self.compressor.basis  # [k, C] or None
        if basis is None or rows.shape[-1] == basis.shape[1]:
            return rows
        return rows @ basis  # [h*w, C]

    def appearance(self, index: int) -> Tensor:
        """``[h*w, D]`` HSV histograms of image ``index`` (decoded)."""
        return self.appearance_rows([index])[0]

    def iter_blocks(self, block_size: int) -> Iterator[tuple[range, Tensor, Tensor]]:
        """Yield ``(indices, content [n, L, C], appearance [n, L, D])`` over the whole store."""
        for start in range(0, len(self), block_size):
            indices = range(start, min(start + block_size, len(self)))
            yield indices, self.content_rows(indices), self.appearance_rows(indices)

"""Writes a feature store shard by shard (creates, resumes or reuses it); see
:mod:`raiha.retrieval.store.feature_store` for the layout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from raiha.io.atomic_io import atomic_write_json
from raiha.retrieval.store.compression import (
    BASIS_FILE,
    CompressionConfig,
    FeatureCompressor,
    resolve_compression,
)
from raiha.retrieval.store.store_format import (
    MANIFEST,
    STORE_FORMAT,
    STORE_VERSION,
    FeatureStoreMismatchError,
    load_compressor,
    mismatch_message,
    read_manifest,
    remove_store_files,
    save_npy,
    shard_file,
)
from raiha.retrieval.store.store_reader import FeatureStore


class FeatureStoreWriter:
    """Creates or resumes a store; call :meth:`write_shard` for each pending shard.

    Args:
        path: the store folder.
        key: what the store holds (compared with an existing manifest).
        image_paths: the full input list (shards slice it).
        grid_size: ``(h, w)`` of both feature grids.
        content_dim: C (of the features given to :meth:`write_shard`); appearance_dim: D.
        shard_size: images per shard.
        rebuild: delete a store with another key instead of failing.
        compression: how features are stored (default ``None``: fp16; ``"auto"``: see
            :func:`~raiha.retrieval.store.compression.resolve_compression`); ``pca_int8`` needs
            :meth:`set_compressor` with a fitted basis before the first shard.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: dict[str, Any],
        image_paths: Sequence[str],
        grid_size: tuple[int, int],
        content_dim: int,
        appearance_dim: int,
        shard_size: int = 1024,
        rebuild: bool = False,
        compression: CompressionConfig | str | None = None,
    ) -> None:
        if not image_paths:
            raise ValueError(
                f"feature store {path}: the gallery image list is empty; give at least one image"
            )
        if shard_size < 1:
            raise ValueError(f"feature store {path}: shard_size must be >= 1, got {shard_size}")
        self.folder = Path(path)
        self.image_paths = [str(p) for p in image_paths]
        self.compression = resolve_compression(compression, grid_size, content_dim, appearance_dim)
        stored = self.compression.to_dict()
        if key.get("compression", stored) != stored:
            raise ValueError(
                f"feature store {path}: the key says compression {key['compression']} but the "
                f"writer was given {stored}; pass the same compression to both"
            )
        full_key = {**key, "shard_size": shard_size, "image_count": len(image_paths)}
        self.key = json.loads(json.dumps({**full_key, "compression": stored}))  # tuples -> lists
        self.shard_size = shard_size
        self.source_content_dim = content_dim
        num_shards = (len(self.image_paths) + shard_size - 1) // shard_size
        stored_dim = self.compression.stored_dim(content_dim)
        fresh = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "key": self.key,
            "grid_size": list(grid_size), "content_dim": stored_dim, "appearance_dim": appearance_dim,
            "source_content_dim": content_dim, "compression": stored, "basis": None,
            "shard_size": shard_size, "num_shards": num_shards, "shards": {}, "complete": False,
        }  # fmt: skip
        manifest_path = self.folder / MANIFEST
        self.manifest = fresh
        if manifest_path.exists():
            try:
                existing = read_manifest(self.folder)
            except ValueError:
                if not rebuild:
                    raise
                existing = {}
            if existing.get("key") == self.key:
                self.manifest = existing  # same inputs: resume (or reuse when complete)
            elif rebuild:
                remove_store_files(self.folder)
            else:
                raise FeatureStoreMismatchError(
                    mismatch_message(self.folder, existing.get("key", {}), self.key)
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(manifest_path, self.manifest)
        self.compressor: FeatureCompressor | None = None
        if self.manifest.get("basis") or not self.compression.projects(content_dim):
            self.compressor = load_compressor(self.folder, self.manifest)
        elif self.compression.method == "random_int8":
            self.set_compressor(FeatureCompressor(self.compression, content_dim))

    def set_compressor(self, compressor: FeatureCompressor) -> None:
        """Record the (fitted) compressor: its basis is saved before any shard is written."""
        if self.compressor is not None:
            raise ValueError(f"feature store {self.folder} already has its compression basis")
        if compressor.config.to_dict() != self.key["compression"] or (
            compressor.source_dim != self.source_content_dim
        ):
            raise ValueError(
                f"feature store {self.folder}: compressor {compressor.config.to_dict()} for "
                f"{compressor.source_dim} dims does not match the store's {self.key['compression']} "
                f"for {self.source_content_dim} dims"
            )
        compressor.save(self.folder / BASIS_FILE)
        record = {"file": BASIS_FILE, "sha256": compressor.fingerprint, **compressor.fit_info}
        self.manifest["basis"] = record
        atomic_write_json(self.folder / MANIFEST, self.manifest)
        self.compressor = compressor

    @property
    def num_shards(self) -> int:
        return int(self.manifest["num_shards"])

    def pending_shards(self) -> list[int]:
        """Shards not yet written, in order."""
        return [s for s in range(self.num_shards) if str(s) not in self.manifest["shards"]]

    def shard_inputs(self, shard: int) -> list[str]:
        """The input image paths of ``shard``."""
        return self.image_paths[shard * self.shard_size : (shard + 1) * self.shard_size]

    def write_shard(
        self,
        shard: int,
        content: Tensor | np.ndarray,
        appearance: Tensor | np.ndarray,
        kept_paths: Sequence[str],
        skipped: Sequence[dict[str, str]] = (),
    ) -> None:
        """Compress and store ``content`` ``[n, L, C]`` and ``appearance`` ``[n, L, D]`` of the kept images of ``shard``."""
        content_t, appearance_t = torch.as_tensor(content), torch.as_tensor(appearance)
        patches = self.manifest["grid_size"][0] * self.manifest["grid_size"][1]
        expected = [
            (len(kept_paths), patches, self.source_content_dim),
            (len(kept_paths), patches, self.manifest["appearance_dim"]),
        ]
        if [tuple(content_t.shape), tuple(appearance_t.shape)] != expected:
            raise ValueError(
                f"feature store {self.folder} shard {shard}: got content {tuple(content_t.shape)} and "
                f"appearance {tuple(appearance_t.shape)}, expected {expected[0]} and {expected[1]}"
            )
        if self.compressor is None:
            raise ValueError(
                f"feature store {self.folder}: the {self.compression.method} basis is not fitted yet; "
                f"call set_compressor before write_shard (build_feature_store does)"
            )
        for kind, array in self.compressor.encode(
            content_t.detach().cpu(), appearance_t.detach().cpu()
        ).items():
            save_npy(shard_file(self.folder, kind, shard), array)
        self.manifest["shards"][str(shard)] = {"paths": list(kept_paths), "skipped": list(skipped)}
        self.manifest["complete"] = not self.pending_shards()
        atomic_write_json(self.folder / MANIFEST, self.manifest)

    def finish(self) -> FeatureStore:
        """Open the finished store (fails if shards are pending)."""
        return FeatureStore.open(self.folder)

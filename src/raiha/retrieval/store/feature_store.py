"""On-disk gallery features: ``.npy`` shards plus a JSON manifest, resumable.

Layout of a store folder::

    manifest.json            key, grid, dims, compression, shard size, and per finished
                             shard the kept image paths and the skipped (unreadable) ones
    compression_basis.safetensors   [k, C] projection (int8 methods only)
    content_00000.npy        fp16: [n, h*w, C] float16; int8: [n, h*w, k] int8
    content_scale_00000.npy  int8 only: [n, h*w] float32 per-cell scales
    appearance_00000.npy     fp16: [n, h*w, D] float16; int8: [n, h*w, D] uint8
    appearance_scale_00000.npy  int8 only: [n, h*w] float32

Arrays are memory-mapped when read and decoded by
:class:`raiha.retrieval.store.compression.FeatureCompressor` (rows come back float16 for fp16
stores, float32 otherwise). Shard ``s`` covers input images
``[s * shard_size, (s + 1) * shard_size)``. Every file is written atomically and the
manifest is rewritten (atomically) after each shard, so an interrupted build resumes at
the first unfinished shard. The ``key`` (extractor name, config and weights fingerprint,
HSV config, image size, hash of the image list, shard size, compression) identifies what
the store holds; a store with another key is refused unless ``rebuild=True``. Store
index ``i`` counts kept images only (skipped ones are absent). Queries must be compressed
like the gallery (:meth:`FeatureStore.compress_query`; the search functions do it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from raiha.io.atomic_io import atomic_write, atomic_write_json
from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.store.compression import (
    BASIS_FILE,
    CompressionConfig,
    FeatureCompressor,
    bytes_per_cell,
    resolve_compression,
)

STORE_FORMAT = "raiha-feature-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"


class FeatureStoreMismatchError(ValueError):
    """The folder holds features of another extractor, image size or image list."""


def image_list_sha256(image_paths: Sequence[str]) -> str:
    """Hash of the ordered gallery list (the names as given, one per line)."""
    return hashlib.sha256("\n".join(str(path) for path in image_paths).encode()).hexdigest()


def _shard_file(folder: Path, kind: str, shard: int) -> Path:
    return folder / f"{kind}_{shard:05d}.npy"


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npy"
            np.save(handle, array)

    atomic_write(path, write)


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
                existing = _read_manifest(self.folder)
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
                    _mismatch_message(self.folder, existing.get("key", {}), self.key)
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(manifest_path, self.manifest)
        self.compressor: FeatureCompressor | None = None
        if self.manifest.get("basis") or not self.compression.projects(content_dim):
            self.compressor = _load_compressor(self.folder, self.manifest)
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
            _save_npy(_shard_file(self.folder, kind, shard), array)
        self.manifest["shards"][str(shard)] = {"paths": list(kept_paths), "skipped": list(skipped)}
        self.manifest["complete"] = not self.pending_shards()
        atomic_write_json(self.folder / MANIFEST, self.manifest)

    def finish(self) -> FeatureStore:
        """Open the finished store (fails if shards are pending)."""
        return FeatureStore.open(self.folder)


def _load_compressor(folder: Path, manifest: dict[str, Any]) -> FeatureCompressor:
    """The compressor a manifest records (stores from before compression are fp16)."""
    config = CompressionConfig.parse(manifest.get("compression", {"method": "fp16"}))
    source_dim = int(manifest.get("source_content_dim", manifest["content_dim"]))
    if not config.projects(source_dim):
        return FeatureCompressor(config, source_dim)
    basis = manifest.get("basis") or {}
    compressor = FeatureCompressor.load(folder / basis.get("file", BASIS_FILE), config, source_dim)
    if compressor.fingerprint != basis.get("sha256"):
        raise ValueError(
            f"feature store {folder}: {BASIS_FILE} does not match the manifest's sha256 "
            f"(modified or from another store); rebuild the store (rebuild=True)"
        )
    return compressor


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"feature store {folder} has no {MANIFEST}; build it with build_feature_store"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"feature store manifest {path} is not valid JSON ({error}); rebuild the store"
        ) from error
    if manifest.get("format") != STORE_FORMAT or manifest.get("version") != STORE_VERSION:
        raise ValueError(
            f"{path} is not a {STORE_FORMAT} v{STORE_VERSION} manifest (format {manifest.get('format')}, "
            f"version {manifest.get('version')}); rebuild the store"
        )
    return manifest


def _mismatch_message(folder: Path, existing: dict[str, Any], wanted: dict[str, Any]) -> str:
    fields = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
    details = "; ".join(
        f"{k}: store has {existing.get(k)!r}, requested {wanted.get(k)!r}" for k in fields
    )
    return (
        f"feature store {folder} was built with other settings ({details}); pass rebuild=True to "
        f"replace it, or use another folder"
    )


def remove_store_files(folder: Path) -> None:
    """Delete the manifest and shard files of a store (and nothing else in the folder)."""
    for path in [
        folder / MANIFEST,
        folder / BASIS_FILE,
        *folder.glob("content_*.npy"),
        *folder.glob("appearance_*.npy"),
    ]:
        path.unlink(missing_ok=True)


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
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self.compressor = _load_compressor(folder, manifest)

    @classmethod
    def open(cls, path: str | Path, *, expected_key: dict[str, Any] | None = None) -> FeatureStore:
        """Open a finished store; every field of ``expected_key`` (optional) must match its key."""
        folder = Path(path)
        manifest = _read_manifest(folder)
        if expected_key is not None:
            wanted = json.loads(json.dumps(expected_key))  # tuples -> lists, as stored
            stored = {k: manifest["key"].get(k) for k in wanted}
            if stored != wanted:
                raise FeatureStoreMismatchError(_mismatch_message(folder, stored, wanted))
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
        if (kind, shard) not in self._arrays:
            self._arrays[(kind, shard)] = np.load(
                _shard_file(self.folder, kind, shard), mmap_mode="r"
            )
        return self._arrays[(kind, shard)]

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
        """
        rows = self.content(index).float()  # [h*w, k or C]
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

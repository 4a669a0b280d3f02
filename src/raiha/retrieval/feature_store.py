"""On-disk gallery features: fp16 ``.npy`` shards plus a JSON manifest, resumable.

Layout of a store folder::

    manifest.json            key, grid, dims, shard size, and per finished shard the kept
                             image paths and the skipped (unreadable) ones
    content_00000.npy        [n, h*w, C] float16, memory-mapped when read
    appearance_00000.npy     [n, h*w, D] float16

Shard ``s`` covers input images ``[s * shard_size, (s + 1) * shard_size)``. Every shard
file is written atomically and the manifest is rewritten (atomically) after each shard,
so an interrupted build resumes at the first unfinished shard. The ``key`` (extractor
name, config and weights fingerprint, HSV config, image size, hash of the image list,
shard size) identifies what the store holds; a store with another key is refused unless
``rebuild=True``. Store index ``i`` counts kept images only (skipped ones are absent).
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

from raiha.utils.atomic_io import atomic_write, atomic_write_json

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
        content_dim: C; appearance_dim: D.
        shard_size: images per shard.
        rebuild: delete a store with another key instead of failing.
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
    ) -> None:
        if not image_paths:
            raise ValueError(
                f"feature store {path}: the gallery image list is empty; give at least one image"
            )
        if shard_size < 1:
            raise ValueError(f"feature store {path}: shard_size must be >= 1, got {shard_size}")
        self.folder = Path(path)
        self.image_paths = [str(p) for p in image_paths]
        self.key = json.loads(
            json.dumps({**key, "shard_size": shard_size, "image_count": len(image_paths)})
        )
        self.shard_size = shard_size
        num_shards = (len(self.image_paths) + shard_size - 1) // shard_size
        fresh = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "key": self.key,
            "grid_size": list(grid_size), "content_dim": content_dim, "appearance_dim": appearance_dim,
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
        """Store ``content`` ``[n, L, C]`` and ``appearance`` ``[n, L, D]`` of the kept images of ``shard``."""
        content_np = _as_fp16(content)
        appearance_np = _as_fp16(appearance)
        patches = self.manifest["grid_size"][0] * self.manifest["grid_size"][1]
        expected = [
            (len(kept_paths), patches, self.manifest["content_dim"]),
            (len(kept_paths), patches, self.manifest["appearance_dim"]),
        ]
        if [content_np.shape, appearance_np.shape] != [tuple(e) for e in expected]:
            raise ValueError(
                f"feature store {self.folder} shard {shard}: got content {content_np.shape} and appearance "
                f"{appearance_np.shape}, expected {expected[0]} and {expected[1]}"
            )
        _save_npy(_shard_file(self.folder, "content", shard), content_np)
        _save_npy(_shard_file(self.folder, "appearance", shard), appearance_np)
        self.manifest["shards"][str(shard)] = {"paths": list(kept_paths), "skipped": list(skipped)}
        self.manifest["complete"] = not self.pending_shards()
        atomic_write_json(self.folder / MANIFEST, self.manifest)

    def finish(self) -> FeatureStore:
        """Open the finished store (fails if shards are pending)."""
        return FeatureStore.open(self.folder)


def _as_fp16(array: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(array, Tensor):
        array = array.detach().cpu().to(torch.float16).numpy()
    return np.ascontiguousarray(array, dtype=np.float16)


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
        *folder.glob("content_*.npy"),
        *folder.glob("appearance_*.npy"),
    ]:
        path.unlink(missing_ok=True)


class FeatureStore:
    """Read-only view of a finished store; satisfies :class:`raiha.retrieval.gallery.GalleryFeatures`."""

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
    def bytes_per_image(self) -> int:
        """Stored bytes of one image's features (fp16 content + appearance)."""
        return 2 * self.grid_size[0] * self.grid_size[1] * (self.content_dim + self.appearance_dim)

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
        dim = self.content_dim if kind == "content" else self.appearance_dim
        out = np.empty(
            (index_array.size, self.grid_size[0] * self.grid_size[1], dim), dtype=np.float16
        )
        for shard in np.unique(shard_of):
            selected = np.nonzero(shard_of == shard)[0]
            local = index_array[selected] - self._shard_starts[shard]
            out[selected] = self._array(kind, int(shard))[local]
        return torch.from_numpy(out)  # [n, L, dim] float16

    def content_rows(self, indices: Sequence[int]) -> Tensor:
        return self._rows("content", indices)

    def appearance_rows(self, indices: Sequence[int]) -> Tensor:
        return self._rows("appearance", indices)

    def content(self, index: int) -> Tensor:
        """``[h*w, C]`` float16 content features of image ``index``."""
        return self.content_rows([index])[0]

    def appearance(self, index: int) -> Tensor:
        """``[h*w, D]`` float16 HSV histograms of image ``index``."""
        return self.appearance_rows([index])[0]

    def iter_blocks(self, block_size: int) -> Iterator[tuple[range, Tensor, Tensor]]:
        """Yield ``(indices, content [n, L, C], appearance [n, L, D])`` over the whole store."""
        for start in range(0, len(self), block_size):
            indices = range(start, min(start + block_size, len(self)))
            yield indices, self.content_rows(indices), self.appearance_rows(indices)

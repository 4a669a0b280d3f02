"""The on-disk format of a feature store: file names, the manifest, the basis, key checks.

Shared by the writer (:mod:`raiha.retrieval.store.store_writer`) and the reader
(:mod:`raiha.retrieval.store.store_reader`); the layout is described in
:mod:`raiha.retrieval.store.feature_store`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raiha.io.atomic_io import atomic_write
from raiha.retrieval.store.compression import BASIS_FILE, CompressionConfig, FeatureCompressor

STORE_FORMAT = "raiha-feature-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"


class FeatureStoreMismatchError(ValueError):
    """The folder holds features of another extractor, image size or image list."""


def image_list_sha256(image_paths: Sequence[str]) -> str:
    """Hash of the ordered gallery list (the names as given, one per line)."""
    return hashlib.sha256("\n".join(str(path) for path in image_paths).encode()).hexdigest()


def shard_file(folder: Path, kind: str, shard: int) -> Path:
    """``<folder>/<kind>_<shard:05d>.npy``."""
    return folder / f"{kind}_{shard:05d}.npy"


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically, in C order whatever its memory layout (so the
    bytes of a shard depend on its values only)."""
    values = np.ascontiguousarray(array)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npy"
            np.save(handle, values)

    atomic_write(path, write)


def load_compressor(folder: Path, manifest: dict[str, Any]) -> FeatureCompressor:
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


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``; clear errors for a missing, invalid or foreign one."""
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


def mismatch_message(folder: Path, existing: dict[str, Any], wanted: dict[str, Any]) -> str:
    """Which key fields differ, and what to do about it."""
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

"""A disk cache of iHarmony4 resized to the training size (HAdobe5k decoding is the bottleneck).

Layout: ``<cache_root>/<size>px-<hash>/<relative path with .npy>`` plus ``manifest.json``,
where the hash covers the absolute dataset root, the format version and the sorted record
list. Composites and real images are stored resized to size x size (PIL bilinear, as
``resize_rgb``) and masks binarised at that size (as ``resize_mask``, 0/255), all as raw
uint8 ``.npy`` (format 2; format 1 was PNG), so reading the cache gives exactly what resizing
the originals on the fly gives, without a decoder: 196,736 bytes per 256 px image and 65,664
per mask (PNG of real photos is ~1.5x smaller, but decoding it was a large part of a
sample's cost). Every file is written atomically; ``manifest.json`` is written last and
marks the cache complete. A cache without a manifest is resumed: files already present and
readable (right dtype and shape) are kept.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from raiha.io.atomic_io import atomic_write, atomic_write_json
from raiha.io.build_journal import record_build
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import (
    MASK_THRESHOLD,
    check_same_size,
    image_size,
    load_mask,
    load_rgb,
    resize_mask,
    resize_rgb,
)
from raiha.io.split_lists import HarmonizationRecord

CACHE_FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"


def cache_key(root: str | Path, records: Sequence[HarmonizationRecord], size: int) -> str:
    """``<size>px-<12 hex>``: a hash of the absolute root and the sorted record list."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}\n{Path(root).resolve()}\n".encode())
    for line in sorted(f"{r.composite}\t{r.mask}\t{r.real}" for r in records):
        digest.update(f"{line}\n".encode())
    return f"{size}px-{digest.hexdigest()[:12]}"


def cached_path(cache_dir: str | Path, relative: str) -> Path:
    """Where the resized copy of ``relative`` (a path under the dataset root) lives in the cache."""
    return Path(cache_dir) / PurePosixPath(relative).with_suffix(".npy")


def load_cached(path: Path, size: int, is_mask: bool) -> np.ndarray:
    """Read one cached file: uint8 [size, size, 3], or bool [size, size] for a mask."""
    expected = (size, size) if is_mask else (size, size, 3)
    try:
        pixels = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RaihaDataError(f"resize cache file {path} is missing; rebuild the resize cache") from None
    except (OSError, ValueError, EOFError) as error:
        raise RaihaDataError(f"resize cache file {path} is corrupt ({error}); rebuild the resize cache") from error
    if pixels.dtype != np.uint8 or pixels.shape != expected:
        raise RaihaDataError(
            f"resize cache file {path} holds {pixels.dtype} {pixels.shape}, expected uint8 {expected}; "
            "rebuild the resize cache"
        )
    return pixels > MASK_THRESHOLD if is_mask else pixels  # [S, S] bool | [S, S, 3]


def downscale_longest_side(image: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Shrink uint8 [H, W, C] so its longest side is ``max_side`` (Lanczos); smaller images are returned as is.

    The common HAdobe5k preprocessing (originals are 1296-6048 px); the aspect ratio is kept,
    the short side rounded to the nearest pixel.
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image
    scale = max_side / longest
    new_width = max(1, round(width * scale))
    new_height = max(1, round(height * scale))
    pil_image = Image.fromarray(
        image.squeeze(2) if image.ndim == 3 and image.shape[2] == 1 else image
    )
    resized = np.asarray(pil_image.resize((new_width, new_height), Image.Resampling.LANCZOS))
    return resized.reshape(new_height, new_width, *image.shape[2:])  # [h, w, C]


def _is_readable(path: Path, size: int, is_mask: bool) -> bool:
    """True when ``path`` exists and holds a whole cached array of the right shape."""
    if not path.is_file():
        return False
    try:
        load_cached(path, size, is_mask)
    except RaihaDataError:
        return False
    return True


def _write_npy(tmp: Path, pixels: np.ndarray) -> None:
    with tmp.open("wb") as stream:
        np.save(stream, np.ascontiguousarray(pixels), allow_pickle=False)


def _save_npy(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 [H, W] or [H, W, 3] to ``path`` as ``.npy``, atomically."""
    atomic_write(path, lambda tmp: _write_npy(tmp, pixels))


def _cache_one(root: Path, cache_dir: Path, relative: str, is_mask: bool, size: int) -> None:
    """Resize one original file into the cache unless a decodable copy is already there."""
    target = cached_path(cache_dir, relative)
    if _is_readable(target, size, is_mask):
        return
    if is_mask:
        mask = resize_mask(load_mask(root / relative), size)  # [size, size] bool
        _save_npy(target, mask.astype(np.uint8) * 255)
    else:
        _save_npy(target, resize_rgb(load_rgb(root / relative), size))  # [size, size, 3]


def _check_record_sizes(root: Path, records: Sequence[HarmonizationRecord]) -> None:
    """Header-only check that every record's mask and real image match its composite's size."""
    sizes: dict[str, tuple[int, int]] = {}

    def size_of(relative: str) -> tuple[int, int]:
        if relative not in sizes:
            sizes[relative] = image_size(root / relative)
        return sizes[relative]

    for record in records:
        composite_size = size_of(record.composite)
        check_same_size(
            root / record.composite,
            composite_size,
            root / record.mask,
            size_of(record.mask),
            "mask",
        )
        check_same_size(
            root / record.composite,
            composite_size,
            root / record.real,
            size_of(record.real),
            "real image",
        )


def build_resized_cache(
    root: str | Path,
    records: Sequence[HarmonizationRecord],
    size: int,
    cache_root: str | Path,
    num_workers: int = 0,
) -> Path:
    """Write resized copies of every composite, mask and real image; returns the cache folder.

    Args:
        root: the iHarmony4 folder the record paths are relative to.
        records: the records to cache (masks and real images shared by records are written once).
        size: the square training size (e.g. 256).
        cache_root: folder holding one sub-folder per cache key.
        num_workers: threads decoding in parallel (PIL releases the GIL); 0 runs in this thread.
    """
    if size <= 0:
        raise RaihaDataError(f"cache size must be positive, got {size}; set data.image_size")
    root = Path(root)
    cache_dir = Path(cache_root) / cache_key(root, records, size)
    manifest_path = cache_dir / MANIFEST_NAME
    if manifest_path.is_file():
        return cache_dir
    start = time.perf_counter()
    _check_record_sizes(root, records)
    jobs: dict[str, bool] = {}  # relative path -> is_mask, first-seen order
    for record in records:
        jobs.setdefault(record.composite, False)
        jobs.setdefault(record.mask, True)
        jobs.setdefault(record.real, False)
    if num_workers > 0:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            futures = [
                pool.submit(_cache_one, root, cache_dir, rel, is_mask, size)
                for rel, is_mask in jobs.items()
            ]
            for future in futures:
                future.result()
    else:
        for relative, is_mask in jobs.items():
            _cache_one(root, cache_dir, relative, is_mask, size)
    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "size": size,
        "root": str(root.resolve()),
        "num_records": len(records),
        "num_files": len(jobs),
    }
    atomic_write_json(manifest_path, manifest)
    record_build(cache_dir, "resized_cache", time.perf_counter() - start, size=size, files=len(jobs))
    return cache_dir

"""The resize cache: built once, resumed, keyed by size/records, read identically by the dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.resize_cache import (
    MANIFEST_NAME,
    build_resized_cache,
    cache_key,
    cached_path,
    downscale_longest_side,
)
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_rgb, resize_rgb
from raiha.io.split_lists import HarmonizationRecord, make_record

SIZE = 24


def write_record(
    root: Path, record: HarmonizationRecord, seed: int, width: int = 50, height: int = 34
) -> None:
    """Random real and composite JPEGs and a box mask PNG (RGB, 0/255)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width, 3), dtype=np.uint8)
    mask[5:25, 8:30] = 255
    for relative, pixels in (
        (record.composite, rng.integers(0, 256, (height, width, 3), dtype=np.uint8)),
        (record.real, rng.integers(0, 256, (height, width, 3), dtype=np.uint8)),
        (record.mask, mask),
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / relative)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[HarmonizationRecord]]:
    root = tmp_path / "iHarmony4"
    records = [
        make_record("HAdobe5k", "a1_1_1.jpg"),
        make_record("HAdobe5k", "a1_1_2.jpg"),  # shares mask and real with the first
        make_record("HFlickr", "f3_2_1.jpg"),
    ]
    for seed, record in enumerate(records):
        write_record(root, record, seed)
    return root, records


def cache_files(cache_dir: Path) -> dict[str, float]:
    return {
        str(p.relative_to(cache_dir)): p.stat().st_mtime_ns
        for p in cache_dir.rglob("*")
        if p.is_file()
    }


def test_build_layout_and_manifest(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    cache_dir = build_resized_cache(root, records, SIZE, tmp_path / "cache")
    assert cache_dir.parent == tmp_path / "cache" and cache_dir.name.startswith(f"{SIZE}px-")
    files = cache_files(cache_dir)
    assert len(files) == 8  # 3 composites + 2 masks + 2 reals + manifest
    assert "HAdobe5k/masks/a1_1.npy" in files and "HFlickr/real_images/f3.npy" in files
    assert (
        cached_path(cache_dir, "HAdobe5k/real_images/a1.jpg")
        == cache_dir / "HAdobe5k/real_images/a1.npy"
    )
    composite = np.load(cached_path(cache_dir, records[0].composite))
    assert composite.dtype == np.uint8 and composite.shape == (SIZE, SIZE, 3)
    # exactly the on-the-fly resize of the original
    assert np.array_equal(composite, resize_rgb(load_rgb(root / records[0].composite), SIZE))
    mask_values = np.unique(np.load(cached_path(cache_dir, records[0].mask)))
    assert set(mask_values.tolist()) == {0, 255}
    assert cached_path(cache_dir, records[0].composite).stat().st_size == 128 + SIZE * SIZE * 3
    manifest = json.loads((cache_dir / MANIFEST_NAME).read_text())
    assert manifest["size"] == SIZE and manifest["num_records"] == 3 and manifest["num_files"] == 7


def test_second_build_rewrites_nothing(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    cache_dir = build_resized_cache(root, records, SIZE, tmp_path / "cache")
    before = cache_files(cache_dir)
    assert build_resized_cache(root, records, SIZE, tmp_path / "cache") == cache_dir
    assert cache_files(cache_dir) == before


def test_resume_after_partial_build(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    cache_dir = build_resized_cache(root, records, SIZE, tmp_path / "cache")
    complete = cache_files(cache_dir)
    (cache_dir / MANIFEST_NAME).unlink()
    deleted = [
        cached_path(cache_dir, records[2].composite),
        cached_path(cache_dir, records[0].mask),
    ]
    for path in deleted:
        path.unlink()
    corrupt = cached_path(cache_dir, records[1].composite)
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a truncated leftover must be redone
    os.utime(corrupt, ns=(1, 1))
    kept = {
        name: mtime
        for name, mtime in cache_files(cache_dir).items()
        if name != str(corrupt.relative_to(cache_dir))
    }
    build_resized_cache(root, records, SIZE, tmp_path / "cache")
    resumed = cache_files(cache_dir)
    assert set(resumed) == set(complete)
    assert all(resumed[name] == mtime for name, mtime in kept.items())  # untouched files kept
    assert resumed[str(corrupt.relative_to(cache_dir))] != 1
    assert np.load(corrupt).shape == (SIZE, SIZE, 3)


def test_key_depends_on_size_records_and_root(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    key = cache_key(root, records, SIZE)
    assert key == cache_key(root, records[::-1], SIZE)  # order does not matter
    assert key != cache_key(root, records, SIZE * 2) and cache_key(root, records, 32).startswith(
        "32px-"
    )
    assert key != cache_key(root, records[:2], SIZE)
    assert key != cache_key(tmp_path / "elsewhere", records, SIZE)
    assert build_resized_cache(root, records, 16, tmp_path / "cache") != build_resized_cache(
        root, records, SIZE, tmp_path / "cache"
    )


def test_dataset_reads_cache_like_originals(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    cache_dir = build_resized_cache(root, records, SIZE, tmp_path / "cache", num_workers=2)
    from_originals = HarmonizationDataset(root, records, image_size=SIZE)
    from_cache = HarmonizationDataset(root, records, image_size=SIZE, cache_dir=cache_dir)
    for index in range(len(records)):
        original_item, cached_item = from_originals[index], from_cache[index]
        for key in ("composite", "mask", "real"):
            torch.testing.assert_close(cached_item[key], original_item[key], atol=1e-6, rtol=0)
    with pytest.raises(RaihaDataError, match="holds 24px images but image_size is 32"):
        HarmonizationDataset(root, records, image_size=32, cache_dir=cache_dir)
    (cache_dir / MANIFEST_NAME).unlink()
    with pytest.raises(RaihaDataError, match="incomplete"):
        HarmonizationDataset(root, records, image_size=SIZE, cache_dir=cache_dir)


def test_threads_write_the_same_files(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    serial = build_resized_cache(root, records, SIZE, tmp_path / "serial")
    threaded = build_resized_cache(root, records, SIZE, tmp_path / "threaded", num_workers=3)
    assert len(list(serial.rglob("*.npy"))) == 7
    for path in serial.rglob("*.npy"):
        assert path.read_bytes() == (threaded / path.relative_to(serial)).read_bytes()


def test_build_checks_sizes_and_files(
    tree: tuple[Path, list[HarmonizationRecord]], tmp_path: Path
) -> None:
    root, records = tree
    Image.new("L", (10, 10), 255).save(root / records[2].mask)
    with pytest.raises(
        RaihaDataError, match=r"mask .*f3_2\.png is 10x10 but composite .*f3_2_1\.jpg is 50x34"
    ):
        build_resized_cache(root, records, SIZE, tmp_path / "cache")
    (root / records[2].mask).unlink()
    with pytest.raises(RaihaDataError, match=r"f3_2\.png not found"):
        build_resized_cache(root, records, SIZE, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob(f"*/{MANIFEST_NAME}"))


def test_downscale_longest_side() -> None:
    landscape = np.full((1500, 2000, 3), 77, dtype=np.uint8)
    small = downscale_longest_side(landscape)
    assert small.shape == (768, 1024, 3) and (small == 77).all()
    portrait = np.zeros((3000, 1000, 1), dtype=np.uint8)
    assert downscale_longest_side(portrait, max_side=300).shape == (300, 100, 1)
    modest = np.zeros((600, 800, 3), dtype=np.uint8)
    assert downscale_longest_side(modest) is modest

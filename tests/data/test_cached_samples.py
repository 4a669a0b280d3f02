"""The fast loader path (raw .npy resize cache, cached references, memoised paths, one-image
grid reads from the feature stores) gives exactly the samples of the on-the-fly path: every
key, every source, with semantic grids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.references.reference_dataset import ReferenceDataset
from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.data.resize_cache import build_resized_cache
from raiha.io.split_lists import read_split
from raiha.world import SyntheticWorldConfig, ensure_world
from tests.store_helpers import OldPathStore, write_random_store

SIZE = 24  # the world is drawn at 32 px: both paths resize


class RampStore:
    """Grid of image k: channel 0 = k, channel 1 = a column ramp, channel 2 = a row ramp."""

    def __init__(self, paths: list[str], grid: int = 3) -> None:
        self._paths, self._grid = paths, grid

    @property
    def image_paths(self) -> list[str]:
        return self._paths

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self._grid, self._grid)

    def source_content(self, index: int) -> torch.Tensor:
        cells = torch.arange(self._grid * self._grid, dtype=torch.float32)
        return torch.stack(
            [torch.full_like(cells, index), cells % self._grid, cells // self._grid], 1
        )


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("world")
    root = ensure_world(
        folder, SyntheticWorldConfig(image_size=32, num_train=16, num_test=6, num_identities=4)
    )
    train, test = read_split(root, "train"), read_split(root, "test")
    cache_dir = build_resized_cache(root, train, SIZE, folder / "cache")
    kwargs = {"image_size": SIZE, "subset_names": ["easy", "hard"]}
    cached = HarmonizationDataset(root, train, cache_dir=cache_dir, **kwargs)
    direct = HarmonizationDataset(root, train, **kwargs)
    return cached, direct, [record.real for record in test]


def _lists(base: HarmonizationDataset, outside: list[str]) -> dict[str, list[str]]:
    """Retrieved lists mixing reals of the split (in the cache) and test reals (not in it);
    every fourth composite gets none."""
    reals = [record.real for record in base.records]
    return {
        record.composite: []
        if i % 4 == 0
        else [reals[(i + 1) % len(reals)], outside[i % len(outside)]]
        for i, record in enumerate(base.records)
    }


def _assert_same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key, value in first.items():
        if torch.is_tensor(value):
            assert value.dtype == second[key].dtype and torch.equal(value, second[key]), key
        else:
            assert value == second[key], key


@pytest.mark.parametrize("use_augmented", [True, False])
def test_cached_samples_equal_the_on_the_fly_samples(bases, use_augmented: bool) -> None:
    cached, direct, outside = bases
    lists = _lists(cached, outside)
    paths = (
        [record.real for record in cached.records] + [r.composite for r in cached.records] + outside
    )
    datasets = [
        ReferenceDataset(
            base, reference_lists=lists, use_augmented=use_augmented, seed=3,
            semantic=SemanticGridLookup([RampStore(paths)]),
        )
        for base in (cached, direct)
    ]  # fmt: skip
    sources = set()
    for epoch in (0, 1):
        for dataset in datasets:
            dataset.set_epoch(epoch)
        for index in range(len(cached)):
            fast, slow = datasets[0][index], datasets[1][index]
            _assert_same(fast, slow)
            sources.add(fast["reference_source"])
    # retrieved (cached and not) and augmented, or none (empty lists without augmentation)
    assert sources == ({1, 2} if use_augmented else {0, 1})


@pytest.mark.parametrize(
    ("composite_spec", "gallery_spec", "use_augmented"),
    [
        ("fp16", "pca_int8:8", True),
        ("pca_int8:8", "fp16", False),
        ("random_int8:12", "pca_int8:8", True),
    ],
)
def test_store_grids_equal_the_generic_read_in_whole_samples(
    bases, tmp_path: Path, composite_spec: str, gallery_spec: str, use_augmented: bool
) -> None:
    """Real stores (fp16 and projected int8, several shards): samples with the one-image
    ``source_content`` equal, key by key, those with the generic row read it replaced."""
    cached, _, outside = bases
    lists = _lists(cached, outside)
    composites = [record.composite for record in cached.records]
    gallery = [record.real for record in cached.records] + outside
    stores = [
        write_random_store(tmp_path / "composites", composites, composite_spec, shard_size=5),
        write_random_store(tmp_path / "gallery", gallery, gallery_spec, shard_size=7, seed=1),
    ]
    assert any(store.compressor.basis is not None for store in stores)  # a projected one
    fast, slow = (
        ReferenceDataset(
            cached, reference_lists=lists, use_augmented=use_augmented, seed=3, semantic=semantic
        )
        for semantic in (
            SemanticGridLookup(stores),
            SemanticGridLookup([OldPathStore(store) for store in stores]),
        )
    )
    sources = set()
    for epoch in (0, 1):
        fast.set_epoch(epoch)
        slow.set_epoch(epoch)
        for index in range(len(cached)):
            sample = fast[index]
            _assert_same(sample, slow[index])
            assert sample["semantic"].shape == (24, 3, 3)
            sources.add(sample["reference_source"])
    assert sources == ({1, 2} if use_augmented else {0, 1})


def test_cached_reference_pixels_come_from_the_cache(bases) -> None:
    cached, direct, outside = bases
    real = cached.records[0].real
    assert torch.equal(
        torch.from_numpy(cached.load_rgb_at_size(real)),
        torch.from_numpy(direct.load_rgb_at_size(real)),
    )
    assert cached.load_rgb_at_size(outside[0]).shape == (
        SIZE,
        SIZE,
        3,
    )  # not cached: decoded and resized

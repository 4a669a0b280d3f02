"""Reference samples: sources, uniform draws, grids that follow the image."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.references.reference_dataset import AUGMENTED, SOURCE_CODES, ReferenceDataset
from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.io.split_lists import read_split
from raiha.world import SyntheticWorldConfig, ensure_world


class FakeStore:
    """A content store whose grid of image k is filled with k (channel 0) and a ramp (channel 1)."""

    def __init__(self, paths: list[str], grid: int = 4) -> None:
        self._paths = paths
        self._grid = grid

    @property
    def image_paths(self) -> list[str]:
        return self._paths

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self._grid, self._grid)

    def content(self, index: int) -> torch.Tensor:
        cells = self._grid * self._grid
        ramp = torch.arange(cells, dtype=torch.float16) % self._grid  # column index
        return torch.stack([torch.full((cells,), float(index), dtype=torch.float16), ramp], dim=1)

    def source_content(self, index: int) -> torch.Tensor:
        return self.content(index)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HarmonizationDataset]:
    cfg = SyntheticWorldConfig(image_size=32, num_train=24, num_test=8, num_identities=6)
    root = ensure_world(tmp_path_factory.mktemp("data"), cfg)
    records = read_split(root, "train")
    return root, HarmonizationDataset(root, records, image_size=32, subset_names=["easy", "hard"])


def _lists(base: HarmonizationDataset) -> dict[str, list[str]]:
    reals = [record.real for record in base.records]
    return {record.composite: [r for r in reals[i + 1 : i + 3] if r != record.real]
            for i, record in enumerate(base.records)}


def test_draws_are_uniform_over_retrieved_plus_augmented(world) -> None:
    _, base = world
    lists = _lists(base)
    dataset = ReferenceDataset(base, reference_lists=lists, seed=0)
    composite = base.records[0].composite
    assert dataset.candidates(composite) == lists[composite] + [AUGMENTED]
    drawn = Counter()
    for epoch in range(300):
        dataset.set_epoch(epoch)
        drawn[dataset[0]["reference_path"]] += 1
    expected = {*lists[composite], base.records[0].real}
    assert set(drawn) == expected
    assert min(drawn.values()) > 300 / len(expected) * 0.7


def test_sources_switch_off(world) -> None:
    _, base = world
    lists = _lists(base)
    only_aug = ReferenceDataset(base, reference_lists=lists, use_retrieved=False)
    assert {only_aug[i]["reference_source"] for i in range(5)} == {SOURCE_CODES["augmented"]}
    only_retrieved = ReferenceDataset(base, reference_lists=lists, use_augmented=False)
    assert {only_retrieved[i]["reference_source"] for i in range(5)} == {SOURCE_CODES["retrieved"]}
    nothing = ReferenceDataset(base, reference_lists={}, use_augmented=False)
    item = nothing[0]
    assert item["reference_valid"] is False and torch.equal(item["reference"], torch.zeros(3, 32, 32))


def test_draws_depend_on_seed_epoch_and_index_only(world) -> None:
    _, base = world
    first = ReferenceDataset(base, reference_lists=_lists(base), seed=5)
    second = ReferenceDataset(base, reference_lists=_lists(base), seed=5)
    second.set_epoch(3)
    first.set_epoch(3)
    assert [first[i]["reference_path"] for i in range(6)] == [second[i]["reference_path"] for i in range(6)]
    assert torch.equal(first[2]["reference"], second[2]["reference"])


def test_retrieved_reference_is_the_resized_real_image(world) -> None:
    root, base = world
    lists = {base.records[0].composite: [base.records[1].real]}
    item = ReferenceDataset(base, reference_lists=lists, use_augmented=False)[0]
    assert item["reference_path"] == base.records[1].real
    torch.testing.assert_close(item["reference"], base[1]["real"], atol=1e-6, rtol=0)


def test_semantic_grids_follow_the_reference(world) -> None:
    _, base = world
    paths = [record.composite for record in base.records] + [record.real for record in base.records]
    lookup = SemanticGridLookup([FakeStore(paths)])
    lists = {base.records[0].composite: [base.records[2].real]}
    retrieved = ReferenceDataset(base, reference_lists=lists, use_augmented=False, semantic=lookup)[0]
    assert retrieved["semantic"].shape == (2, 4, 4)
    assert retrieved["semantic"][0].eq(paths.index(base.records[0].composite)).all()
    assert retrieved["reference_semantic"][0].eq(paths.index(base.records[2].real)).all()
    augmented = ReferenceDataset(base, use_retrieved=False, semantic=lookup)
    for index in range(len(base)):
        item = augmented[index]
        real_id = paths.index(base.records[index].real)
        torch.testing.assert_close(item["reference_semantic"][0], torch.full((4, 4), float(real_id)))
        ramp = item["reference_semantic"][1]  # resampled column index: monotone along the row
        row_steps = ramp[:, 1:] - ramp[:, :-1]
        assert (row_steps >= -1e-4).all() or (row_steps <= 1e-4).all()  # flipped or not


def test_missing_grid_is_named() -> None:
    lookup = SemanticGridLookup([FakeStore(["a.jpg"])])
    with pytest.raises(KeyError, match="no semantic grid for b.jpg"):
        lookup.grid("b.jpg")


def test_evaluation_always_uses_the_retrieved_references(world) -> None:
    """use_retrieved / use_augmented are training ablations: every Table III row is tested
    on the same retrieved references (never on a crop of the target)."""
    from raiha.data.references.settings import ReferenceSettings
    from raiha.data.references.wiring import ReferenceArtifacts, wrap_with_references

    _, base = world
    lists = {record.composite: [base.records[(i + 1) % len(base)].real] for i, record in enumerate(base.records)}
    artifacts = ReferenceArtifacts(lists={"train": lists, "test": lists})
    ablation = ReferenceSettings.from_config({"use_retrieved": False, "use_augmented": True}, image_size=64)
    train = wrap_with_references(base, artifacts, ablation, "train", 0, training=True)
    test = wrap_with_references(base, artifacts, ablation, "test", 0, training=False)
    assert train.candidates(base.records[0].composite) == [AUGMENTED]
    assert test.candidates(base.records[0].composite) == lists[base.records[0].composite]
    assert SOURCE_CODES["retrieved"] == int(test[0]["reference_source"])


def test_drawn_reference_names_the_reference_the_item_uses(world) -> None:
    """per_image.csv names each image's reference without loading it: it must be the one used."""
    _, base = world
    dataset = ReferenceDataset(base, reference_lists=_lists(base), seed=3)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for index in range(len(base)):
            assert dataset.drawn_reference(index) == dataset[index]["reference_path"]
    no_lists = ReferenceDataset(base, reference_lists={}, use_augmented=False, seed=0)
    assert no_lists.drawn_reference(0) == no_lists[0]["reference_path"] == ""

"""The retrieval job end to end on a tiny synthetic world: lists, exclusions, reuse, brute force,
and the errors on an empty gallery or unreadable images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_mask
from raiha.io.reference_lists import read_reference_list
from raiha.io.split_lists import read_split
from raiha.retrieval import pipeline
from raiha.retrieval.features.grids import mask_to_cells
from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.list_search import make_searcher
from raiha.retrieval.pipeline import (
    build_reference_lists,
    open_reference_lists,
    run_reference_pipeline,
)
from raiha.retrieval.search.patch_index import PatchIndex, PatchIndexConfig
from raiha.retrieval.search.rule import brute_force_search
from raiha.retrieval.settings import RetrievalSettings
from raiha.retrieval.store.feature_store import FeatureStoreMismatchError
from raiha.world import SyntheticWorldConfig, generate_world

TINY = SyntheticWorldConfig(image_size=48, num_train=100, num_test=30, num_identities=20)
SMALL_INDEX = PatchIndexConfig(content_clusters=32, appearance_clusters=16, kmeans_sample=4096)


def _settings(**changes: object) -> RetrievalSettings:
    return RetrievalSettings(
        image_size=48, index=SMALL_INDEX, max_refs=20, batch_size=64, **changes
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world") / "tiny", TINY)


@pytest.fixture(scope="module")
def built(world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    data_dir = tmp_path_factory.mktemp("cache")
    return data_dir, build_reference_lists(world, data_dir, _settings(), progress=False)


def test_lists_are_written_for_both_splits_in_the_authors_format(world: Path, built: tuple) -> None:
    _, outputs = built
    train_reals = {record.real for record in read_split(world, "train")}
    for split in ("train", "test"):
        entries = read_reference_list(outputs.lists[split])
        records = read_split(world, split)
        assert [entry.input for entry in entries] == [record.composite for record in records]
        assert [entry.mask for entry in entries] == [record.mask for record in records]
        for entry, record in zip(entries, records):
            assert record.real not in entry.refs  # never the composite's own real image
            assert set(entry.refs) <= train_reals  # only train real images
            assert len(entry.refs) <= 20 and len(set(entry.refs)) == len(entry.refs)
            assert len(entry.extra["scores"]) == len(entry.refs)
            content_scores = [score[0] for score in entry.extra["scores"]]
            assert all(score >= 0.7 - 1e-4 for score in content_scores)
            assert content_scores == sorted(content_scores, reverse=True)
        counts = outputs.summary["splits"][split]
        assert counts["composites"] == len(records)
        assert counts["empty"] == sum(not entry.refs for entry in entries)
        assert counts["refs"] == sum(len(entry.refs) for entry in entries) > 0


def test_a_second_call_reuses_everything(world: Path, built: tuple) -> None:
    data_dir, outputs = built
    before = {split: path.read_bytes() for split, path in outputs.lists.items()}
    stamps = {
        path: path.stat().st_mtime_ns for path in outputs.lists_dir.parent.parent.rglob("*.npy")
    }
    again = build_reference_lists(world, data_dir, _settings(), progress=False)
    assert again.reused and again.lists == outputs.lists
    assert {split: path.read_bytes() for split, path in again.lists.items()} == before
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps  # no store rewritten
    opened = open_reference_lists(world, data_dir, _settings())
    assert opened.lists == outputs.lists and len(opened.stores) == 3
    via_datamodule = run_reference_pipeline(
        root=world,
        data_dir=data_dir,
        image_size=48,
        settings={"index": SMALL_INDEX.__dict__, "max_refs": 20},
        build=False,
    )
    assert via_datamodule.lists == outputs.lists


def test_the_datamodule_finds_complete_outputs_without_building_the_extractor(
    world: Path, built: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare_data runs once per reference seed in the test protocol: no ViT load each time."""
    data_dir, outputs = built
    settings = {"index": SMALL_INDEX.__dict__, "max_refs": 20, "batch_size": 64}
    built_extractors: list[str] = []
    real_create = pipeline.create_extractor

    def counting_create(name: str, **kwargs: object) -> object:
        built_extractors.append(name)
        return real_create(name, **kwargs)

    monkeypatch.setattr(pipeline, "create_extractor", counting_create)
    for _ in range(2):
        found = run_reference_pipeline(
            root=world, data_dir=data_dir, image_size=48, settings=settings, build=True
        )
        assert found.reused and found.lists == outputs.lists and built_extractors == []
    with pytest.raises(RaihaDataError, match="no retrieval outputs"):  # other ranks never build
        run_reference_pipeline(
            root=world, data_dir=tmp_path / "empty", image_size=48, settings=settings, build=False
        )
    fresh = run_reference_pipeline(
        root=world, data_dir=tmp_path / "fresh", image_size=48, settings=settings, build=True
    )
    assert built_extractors == ["synthetic"] and not fresh.reused
    assert fresh.lists["test"].read_bytes() == outputs.lists["test"].read_bytes()


def test_compressed_composite_stores_feed_the_lists_and_the_semantic_grids(
    world: Path, built: tuple, tmp_path: Path
) -> None:
    """pca_int8 composites: smaller, read back through their basis in the extractor's space."""
    _, exact = built
    compressed = build_reference_lists(
        world, tmp_path, _settings(composite_compression="pca_int8"), progress=False
    )
    store, exact_store = compressed.composite_stores["test"], exact.composite_stores["test"]
    assert exact_store.compression.method == "fp16" and store.compression.method == "pca_int8"
    assert store.content_dim == 128 and store.bytes_per_image < exact_store.bytes_per_image / 2
    assert compressed.gallery.key == exact.gallery.key  # the gallery is not affected
    lookup, exact_lookup = SemanticGridLookup(compressed.stores), SemanticGridLookup(exact.stores)
    grids = torch.stack([lookup.grid(path) for path in store.image_paths])  # [N, 192, 6, 6]
    exact_grids = torch.stack([exact_lookup.grid(path) for path in store.image_paths])
    assert grids.shape == exact_grids.shape and grids.shape[1:] == (192, 6, 6)
    cosine = torch.nn.functional.cosine_similarity(grids, exact_grids, dim=1)  # [N, 6, 6]
    norm = exact_grids.norm(dim=1)  # [N, 6, 6]; the extractor zeroes cells without evidence
    assert (cosine * norm).sum() / norm.sum() > 0.9  # 0.976 in the benchmark's world
    agreeing = [
        entry.refs == exact_entry.refs
        for split in ("train", "test")
        for entry, exact_entry in zip(
            read_reference_list(compressed.lists[split]), read_reference_list(exact.lists[split])
        )
    ]
    assert sum(agreeing) / len(agreeing) > 0.9  # 1.0 in the benchmark's world
    with pytest.raises(FeatureStoreMismatchError, match="compression: store has"):
        open_reference_lists(world, tmp_path, _settings(composite_compression="fp16"))


def test_other_thresholds_write_other_lists_from_the_same_stores(world: Path, built: tuple) -> None:
    data_dir, outputs = built
    ranged = build_reference_lists(
        world, data_dir, _settings(eps_a_range=(0.7, 0.9)), progress=False
    )
    assert ranged.lists_dir != outputs.lists_dir and not ranged.reused
    assert ranged.gallery.folder == outputs.gallery.folder
    for entry in read_reference_list(ranged.lists["test"]):
        assert all(0.7 <= score[1] < 0.9 for score in entry.extra["scores"])


def test_composites_searched_without_a_store_give_the_same_lists(world: Path, built: tuple) -> None:
    data_dir, outputs = built
    unstored = build_reference_lists(
        world, data_dir, _settings(store_composites=False), splits=("test",), progress=False
    )
    assert unstored.composite_stores == {} and unstored.lists_dir != outputs.lists_dir
    assert unstored.lists["test"].read_bytes() == outputs.lists["test"].read_bytes()
    assert outputs.lists["test"].is_file()  # the stored variant's lists stay valid


def test_prefiltered_lists_equal_indexed_and_brute_force_search(world: Path, built: tuple) -> None:
    _, outputs = built
    store, gallery = outputs.composite_stores["test"], outputs.gallery
    height, width = gallery.grid_size
    config = _settings().retrieval_config()
    indexed = make_searcher(gallery, "indexed", PatchIndex.build(gallery, SMALL_INDEX))
    records = read_split(world, "test")
    for entry, record in zip(read_reference_list(outputs.lists["test"]), records, strict=True):
        index = store.image_paths.index(record.composite)
        fg_cells = mask_to_cells(torch.from_numpy(load_mask(world / record.mask)), (height, width))
        query = RetrievalQuery(
            store.content(index).float().reshape(height, width, -1),
            store.appearance(index).float().reshape(height, width, -1),
            fg_cells,
            (record.real,),
        )
        brute = brute_force_search(query, gallery, config)
        assert [ref.path for ref in brute] == entry.refs
        assert indexed.search(query, config) == brute


def test_empty_gallery_is_a_clear_error(world: Path, tmp_path: Path) -> None:
    root = tmp_path / "no_train"
    shutil.copytree(world, root)
    (root / "IHD_train.txt").write_text("\n")
    with pytest.raises(RaihaDataError, match="gallery.*would be empty"):
        build_reference_lists(root, tmp_path / "cache", _settings(), progress=False)


def test_unreadable_gallery_image_is_named_or_skipped(world: Path, tmp_path: Path) -> None:
    root = tmp_path / "corrupt"
    shutil.copytree(world, root)
    broken = read_split(root, "train")[3].real
    (root / broken).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(RaihaDataError, match=broken.split("/")[-1]):
        build_reference_lists(root, tmp_path / "cache", _settings(), progress=False)
    outputs = build_reference_lists(
        root, tmp_path / "cache2", _settings(skip_unreadable=True), progress=False
    )
    assert [item["path"] for item in outputs.gallery.skipped] == [broken]
    assert outputs.summary["gallery_skipped"][0]["path"] == broken
    for split in ("train", "test"):
        assert all(broken not in entry.refs for entry in read_reference_list(outputs.lists[split]))


@pytest.mark.slow
def test_weight_free_retrieval_finds_what_the_ground_truth_says(tmp_path: Path) -> None:
    """The paper's rule with the ``synthetic`` extractor on a 64 px world: precision and
    recall against the ground truth (same identity, same light) stay near the full
    world's 0.92 / 0.85 (experiments/retrieval_synthetic.md), and wrong-light
    references are rare."""
    from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
    from raiha.retrieval.ground_truth_score import score_reference_lists
    from raiha.world import load_ground_truth

    world = generate_world(
        tmp_path / "world", SyntheticWorldConfig(num_train=480, num_test=120, num_identities=80)
    )
    settings = RetrievalSettings(
        image_size=64, max_refs=20, search="prefilter", batch_size=128,
        hsv=HsvHistogramConfig(hue_bins=16, saturation_bins=4, value_bins=8),
    )  # fmt: skip
    outputs = build_reference_lists(world, tmp_path / "cache", settings, progress=False)
    score = score_reference_lists(outputs.lists, load_ground_truth(world), cap=20)
    for split in ("train", "test"):
        result = score[split]["all"]
        assert result["precision_micro"] >= 0.85, (split, result)
        assert result["recall_micro"] >= 0.75, (split, result)
        assert result["same_illuminant"] >= 0.9, (split, result)


def test_batched_search_writes_byte_identical_lists(
    world: Path, built: tuple, tmp_path: Path
) -> None:
    data_dir, outputs = built
    cache = tmp_path / "cache"
    shutil.copytree(data_dir, cache)  # the same stores, without the lists and cached scores
    shutil.rmtree(cache / outputs.lists_dir.parent.relative_to(data_dir))
    settings = _settings(search="batched", search_device="cpu")
    batched = build_reference_lists(world, cache, settings, progress=False)
    assert batched.summary["scores_reused"] == {"train": False, "test": False}
    assert batched.summary["splits"] == outputs.summary["splits"]
    for split, path in outputs.lists.items():
        assert batched.lists[split].read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="search_device must be one of"):
        _settings(search="batched", search_device="tpu")

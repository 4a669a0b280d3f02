"""Sweeps reuse scores: a second rule at the same eps_c derives its lists from the scores
cached next to the lists (no search, the same bytes as a search); others search and extend."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from raiha.io.errors import RaihaDataError
from raiha.io.reference_lists import read_reference_list
from raiha.io.split_lists import read_split
from raiha.retrieval import list_search, split_search
from raiha.retrieval.pipeline import ReferencePipelineOutputs, build_reference_lists
from raiha.retrieval.search.score_cache import CachedScores
from raiha.retrieval.settings import RetrievalSettings
from raiha.world import SyntheticWorldConfig, generate_world
from tests.retrieval.test_pipeline import SMALL_INDEX

TINY = SyntheticWorldConfig(image_size=32, num_train=60, num_test=20, num_identities=12)
SPLITS = ("train", "test")


def _settings(**changes: object) -> RetrievalSettings:
    values: dict = {"image_size": 32, "index": SMALL_INDEX, "batch_size": 64, **changes}
    return RetrievalSettings(**values)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world") / "tiny", TINY)


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many queries were scored by a searcher, per call of ``list_search._scores``."""
    calls: list[int] = []
    real: Callable = list_search._scores

    def counting(searcher: object, queries: list, config: object) -> list:
        calls.append(len(queries))
        return real(searcher, queries, config)

    monkeypatch.setattr(list_search, "_scores", counting)
    return calls


def _fresh(world: Path, data_dir: Path, tmp_path: Path, settings: RetrievalSettings) -> ReferencePipelineOutputs:
    """The lists of ``settings`` searched from the same stores, without any cached scores."""
    cache = tmp_path / "fresh"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(data_dir, cache)
    shutil.rmtree(next(cache.glob("retrieval/*/lists")))
    outputs = build_reference_lists(world, cache, settings, progress=False)
    assert outputs.summary["scores_reused"] == {"train": False, "test": False}
    return outputs


def _same_bytes(one: ReferencePipelineOutputs, other: ReferencePipelineOutputs) -> bool:
    return all(one.lists[s].read_bytes() == other.lists[s].read_bytes() for s in SPLITS)


def test_an_eps_a_sweep_searches_once_and_writes_the_bytes_of_a_search(
    world: Path, tmp_path: Path, searches: list[int]
) -> None:
    data_dir = tmp_path / "cache"
    first = build_reference_lists(world, data_dir, _settings(), progress=False)
    assert sum(searches) == 80 and first.summary["scores_reused"] == {"train": False, "test": False}
    searches.clear()
    rules = [
        _settings(eps_a_range=(0.7, 0.8)),
        _settings(eps_a=0.8, max_refs=2),
        _settings(eps_a_range=(-1.0, 0.95), max_refs=None),
    ]
    derived = [build_reference_lists(world, data_dir, rule, progress=False) for rule in rules]
    assert searches == []  # no query scored: every list came from the cached scores
    assert all(out.summary["scores_reused"] == {"train": True, "test": True} for out in derived)
    assert len({out.lists_dir for out in [first, *derived]}) == 4
    assert sum(out.summary["splits"]["test"]["refs"] for out in derived) > 0
    for rule, out in zip(rules, derived):
        fresh = _fresh(world, data_dir, tmp_path, rule)
        assert _same_bytes(out, fresh) and fresh.summary["splits"] == out.summary["splits"]
        assert fresh.lists_dir.name == out.lists_dir.name  # list folder names are unchanged


def test_another_eps_c_searches_and_a_damaged_cache_is_searched_again(
    world: Path, tmp_path: Path, searches: list[int]
) -> None:
    data_dir = tmp_path / "cache"
    build_reference_lists(world, data_dir, _settings(), progress=False)
    searches.clear()
    other = build_reference_lists(world, data_dir, _settings(eps_c=0.6), progress=False)
    assert sum(searches) == 80 and other.summary["scores_reused"] == {"train": False, "test": False}
    files = sorted(path.name for path in other.lists_dir.parent.glob("scores-*"))
    assert [name.rsplit("-", 1)[0] for name in files] == [
        "scores-test-c0.6", "scores-test-c0.7", "scores-train-c0.6", "scores-train-c0.7",
    ]  # fmt: skip
    searches.clear()
    build_reference_lists(world, data_dir, _settings(eps_c=0.6, eps_a=0.95), progress=False)
    assert searches == []
    damaged = next(other.lists_dir.parent.glob("scores-test-c0.7-*"))
    damaged.write_bytes(b"not safetensors")
    again = build_reference_lists(world, data_dir, _settings(eps_a=0.85), progress=False)
    assert again.summary["scores_reused"] == {"train": True, "test": False}
    assert sum(searches) == 20 and CachedScores.load(damaged).num_queries == 20


def test_an_indexed_search_vouches_for_its_low_end_and_a_lower_one_extends_it(
    world: Path, tmp_path: Path, searches: list[int]
) -> None:
    data_dir = tmp_path / "cache"
    build_reference_lists(world, data_dir, _settings(search="indexed"), progress=False)
    scores_file = next(data_dir.glob("retrieval/*/lists/scores-test-*"))
    assert CachedScores.load(scores_file).vouched_low == pytest.approx(0.9)
    searches.clear()
    lower = _settings(search="indexed", eps_a_range=(0.7, 0.8))
    ranged = build_reference_lists(world, data_dir, lower, progress=False)
    assert sum(searches) == 80 and ranged.summary["scores_reused"]["test"] is False
    assert CachedScores.load(scores_file).vouched_low == pytest.approx(0.7)  # extended
    searches.clear()
    between = _settings(search="indexed", eps_a=0.8, max_refs=3)
    derived = build_reference_lists(world, data_dir, between, progress=False)
    assert searches == [] and _same_bytes(derived, _fresh(world, data_dir, tmp_path, between))


@pytest.mark.parametrize("search", ["indexed", "batched"])
def test_a_sweep_that_sets_search_low_searches_once_in_any_order(
    world: Path, tmp_path: Path, searches: list[int], search: str
) -> None:
    """retrieval.search_low: the default rule searched first still serves a lower range."""
    data_dir = tmp_path / "cache"
    sweep = [_settings(search=search, search_low=0.7, **rule) for rule in
             ({}, {"eps_a_range": (0.7, 0.8)}, {"eps_a": 0.8, "max_refs": 3})]  # fmt: skip
    first = build_reference_lists(world, data_dir, sweep[0], progress=False)
    assert sum(searches) == 80
    scores_file = next(data_dir.glob("retrieval/*/lists/scores-test-*"))
    assert CachedScores.load(scores_file).vouched_low == pytest.approx(0.7)
    searches.clear()
    derived = [build_reference_lists(world, data_dir, rule, progress=False) for rule in sweep[1:]]
    assert searches == []
    for rule, out in zip(sweep, [first, *derived]):
        plain = dataclasses.replace(rule, search_low=None)  # the same lists without search_low
        assert _same_bytes(out, _fresh(world, data_dir, tmp_path, plain))


def test_pipeline_builds_no_searcher_for_a_derived_rule(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second rule loads neither the gallery's content (prefilter) nor the patch index."""
    data_dir = tmp_path / "cache"
    build_reference_lists(world, data_dir, _settings(), progress=False)
    made: list[str] = []
    real = split_search.make_searcher_for
    monkeypatch.setattr(split_search, "make_searcher_for", lambda g, s: made.append(s.search) or real(g, s))
    build_reference_lists(world, data_dir, _settings(eps_a_range=(0.8, 0.9)), progress=False)
    assert made == []
    build_reference_lists(world, data_dir, _settings(eps_c=0.65), progress=False)
    assert made == ["prefilter"]


def test_composites_without_a_query_keep_their_reason_in_the_cache(world: Path, tmp_path: Path) -> None:
    """An unreadable mask (skipped) is cached as such: the derived rule counts it the same way."""
    root = tmp_path / "corrupt"
    shutil.copytree(world, root)
    broken = read_split(root, "test")[2]
    (root / broken.mask).write_bytes(b"not a png")
    first = build_reference_lists(root, tmp_path / "cache", _settings(skip_unreadable=True), progress=False)
    ranged = _settings(skip_unreadable=True, eps_a_range=(0.6, 0.9))
    derived = build_reference_lists(root, tmp_path / "cache", ranged, progress=False)
    assert derived.summary["scores_reused"]["test"] is True
    for outputs in (first, derived):
        assert outputs.summary["splits"]["test"]["unreadable"] == 1
        assert read_reference_list(outputs.lists["test"])[2].refs == []
    with pytest.raises(RaihaDataError, match=broken.mask.split("/")[-1]):  # not from the cache
        build_reference_lists(root, tmp_path / "cache", _settings(eps_a=0.85), progress=False)

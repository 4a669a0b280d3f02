"""Lists derived from cached scores equal brute force; only uncovered rules search again."""

from __future__ import annotations

from pathlib import Path

import pytest

from raiha.retrieval.search.rule import RetrievalConfig, brute_force_search
from raiha.retrieval.search.score_cache import CachedScores, ScoreCache
from tests.retrieval.test_batched_search import _searcher
from tests.retrieval.test_patch_index import _planted_query, _random_gallery

SWEEP = [  # one eps_c: the paper's rule, an eps_a sweep and the two ablation ranges
    RetrievalConfig(eps_c=0.5, eps_a=0.6),
    RetrievalConfig(eps_c=0.5, eps_a=0.8, max_refs=2),
    RetrievalConfig(eps_c=0.5, eps_a=0.9),
    RetrievalConfig(eps_c=0.5, eps_a_range=(0.7, 0.8)),
    RetrievalConfig(eps_c=0.5, eps_a_range=(0.6, 0.9)),
]


@pytest.mark.parametrize("precision", ["exact", "half"])
def test_a_sweep_searches_once_and_equals_brute_force(precision: str, tmp_path: Path) -> None:
    gallery = _random_gallery(6)
    queries = [_planted_query(gallery, seed) for seed in range(4)]
    cache = ScoreCache(_searcher(gallery, precision, True), queries)
    cache.prime(SWEEP)
    found = 0
    for rule in SWEEP:
        expected = [brute_force_search(query, gallery, rule) for query in queries]
        assert cache.lists(rule) == expected
        found += sum(map(len, expected))
    assert cache.searches == 1 and found > 5
    saved = cache.scores[0.5].save(tmp_path / "scores.safetensors")
    loaded = CachedScores.load(saved)
    assert loaded.covers(SWEEP[0]) and not loaded.covers(RetrievalConfig(0.5, 0.55))
    assert loaded.lists(SWEEP[2], gallery.paths, cache.excluded) == cache.lists(SWEEP[2])
    with pytest.raises(ValueError, match="cannot vouch for"):
        loaded.lists(RetrievalConfig(0.7), gallery.paths, cache.excluded)


def test_uncovered_rules_fall_back_to_search() -> None:
    gallery = _random_gallery(7)
    queries = [_planted_query(gallery, seed) for seed in range(3)]
    cache = ScoreCache(_searcher(gallery, "exact", True), queries)
    rules = [
        RetrievalConfig(eps_c=0.5, eps_a=0.8),
        RetrievalConfig(eps_c=0.5, eps_a=0.6),  # lower lo: searches
        RetrievalConfig(eps_c=0.5, eps_a=0.7),  # covered by the 0.6 one
        RetrievalConfig(eps_c=0.6, eps_a=0.7),  # another eps_c
    ]
    searches = []
    for rule in rules:
        assert cache.lists(rule) == [brute_force_search(q, gallery, rule) for q in queries]
        searches.append(cache.searches)
    assert searches == [1, 2, 2, 3]

"""Joint (content + appearance) postings: still exact, never more candidates, saved and loaded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from raiha.retrieval.search.batched import BatchedSearchConfig, BatchedSearcher
from raiha.retrieval.search.patch_index import PatchIndex, indexed_search
from raiha.retrieval.search.rule import brute_force_search, prepare_query
from tests.retrieval.test_patch_index import (
    CONFIGS,
    SMALL_INDEX,
    _planted_query,
    _random_gallery,
)

JOINT_INDEX = replace(SMALL_INDEX, joint_clusters=10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joint_index_is_exact_and_prunes_at_least_as_much(seed: int) -> None:
    gallery = _random_gallery(seed)
    separate = PatchIndex.build(gallery, SMALL_INDEX)
    joint = PatchIndex.build(gallery, JOINT_INDEX)
    assert joint.joint is not None and separate.joint is None
    queries = [_planted_query(gallery, seed + k) for k in range(3)]
    batched = BatchedSearcher(
        gallery, joint, device="cpu", config=BatchedSearchConfig(query_batch=2, gallery_block=9)
    )
    found = 0
    for config in CONFIGS:
        expected = [brute_force_search(query, gallery, config) for query in queries]
        assert [indexed_search(q, gallery, joint, config) for q in queries] == expected
        assert batched.search_batch(queries, config) == expected
        found += sum(map(len, expected))
        for query in queries:
            prepared = prepare_query(query)
            fewer = set(joint.candidates(prepared, config).tolist())
            assert fewer <= set(separate.candidates(prepared, config).tolist())
    assert found > 0


def test_joint_index_round_trips(tmp_path: Path) -> None:
    gallery = _random_gallery(5)
    index = PatchIndex.build(gallery, JOINT_INDEX)
    loaded = PatchIndex.load(index.save(tmp_path / "index.safetensors"))
    assert loaded.config == JOINT_INDEX and loaded.nbytes == index.nbytes > 0
    assert loaded.joint is not None and torch.equal(loaded.joint.radii, index.joint.radii)
    old_style = PatchIndex.load(PatchIndex.build(gallery, SMALL_INDEX).save(tmp_path / "old.st"))
    assert old_style.joint is None

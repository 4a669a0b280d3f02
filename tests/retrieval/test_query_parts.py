"""A split's queries scored in parts: the merged scores and lists are a single search's bytes,
whatever the part size; a killed job resumes from the parts it wrote; parts of another job
or damaged files are scored again; ranks deal the parts out between them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from raiha.retrieval.pipeline import ReferencePipelineOutputs, build_reference_lists
from raiha.retrieval.query_parts import QueryParts, score_parts
from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.search.score_cache import CachedScores
from raiha.utils.rank_group import RankGroup
from raiha.world import generate_world
from tests.retrieval.test_pipeline_score_cache import SPLITS, TINY, _settings

RULE = RetrievalConfig(eps_c=0.5, eps_a=0.8)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world") / "tiny", TINY)


def _random_rows(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(count):
        size = int(torch.randint(0, 6, (1,), generator=generator))
        images = torch.randperm(50, generator=generator)[:size]
        rows.append((images, torch.rand(size, generator=generator), torch.rand(size, generator=generator)))
    return rows


def _equal(one: CachedScores, other: CachedScores) -> bool:
    names = ("offsets", "images", "content", "illumination")
    same = all(torch.equal(getattr(one, n), getattr(other, n)) for n in names)
    if one.unscored is None or other.unscored is None:
        same &= one.unscored is other.unscored
    else:
        same &= torch.equal(one.unscored, other.unscored)
    return same and (one.eps_c, one.vouched_low, one.key) == (other.eps_c, other.vouched_low, other.key)


@pytest.mark.parametrize("part_size", [1, 3, 7, 40])
def test_concatenated_parts_equal_the_scores_of_all_queries(part_size: int) -> None:
    rows = _random_rows(23, seed=part_size)
    codes = torch.randint(0, 3, (23,), dtype=torch.int8)
    whole = CachedScores.from_rows(rows, 0.5, 0.8, codes, key="split")
    parts = [
        CachedScores.from_rows(rows[s : s + part_size], 0.5, 0.8, codes[s : s + part_size], key=f"p{s}")
        for s in range(0, 23, part_size)
    ]
    assert _equal(CachedScores.concatenate(parts, key="split"), whole)
    with pytest.raises(ValueError, match="different eps_c"):
        CachedScores.concatenate([parts[0], CachedScores.from_rows(rows[:2], 0.6, 0.8)])


def test_ranks_deal_every_part_to_exactly_one_rank() -> None:
    for world_size in (1, 2, 3, 8):
        owners = [[rank for rank in range(world_size) if RankGroup(rank, world_size).owns(part)] for part in range(29)]
        assert all(len(owner) == 1 for owner in owners)
    with pytest.raises(ValueError, match="rank 2 of 2"):
        RankGroup(2, 2)


def test_parts_resume_and_refuse_files_of_another_job(tmp_path: Path) -> None:
    rows = _random_rows(10, seed=1)
    parts = QueryParts(tmp_path / "parts", key="k", total=10, part_size=4)
    assert parts.num_parts == 3 and parts.bounds(2) == (8, 10)

    def score_range(start: int, end: int, part_key: str) -> CachedScores:
        scored.append((start, end))
        return CachedScores.from_rows(rows[start:end], 0.5, 0.8, key=part_key)

    scored: list[tuple[int, int]] = []
    assert score_parts(parts, RULE, RankGroup(1, 2), score_range) == 1 and scored == [(4, 8)]
    with pytest.raises(RuntimeError, match="2 of 3 score parts"):
        parts.merge(RULE)  # rank 0's parts are missing
    parts.path(2).parent.mkdir(exist_ok=True)
    parts.path(2).write_bytes(b"not a safetensors file")  # a damaged part
    QueryParts(tmp_path / "parts", key="other", total=10, part_size=4).save(0, score_range(0, 4, "other:0-4"))
    scored.clear()
    score_parts(parts, RULE, RankGroup(0, 1), score_range)  # part 0 is another job's, 2 is damaged
    assert scored == [(0, 4), (8, 10)]
    merged = parts.merge(RULE)
    assert _equal(merged, CachedScores.from_rows(rows, 0.5, 0.8, key="k"))
    scored.clear()
    score_parts(parts, RULE, RankGroup(0, 1), score_range)
    assert scored == []  # complete: nothing scored again
    lower = RetrievalConfig(eps_c=0.5, eps_a=0.7)  # parts scored at 0.8 cannot vouch for 0.7
    assert list(parts.missing(lower, RankGroup().owns)) == [0, 1, 2]


class JobKilled(Exception):
    """Stands for the job being killed between two parts."""


def _run(world: Path, data_dir: Path, **changes: object) -> ReferencePipelineOutputs:
    return build_reference_lists(world, data_dir, _settings(**changes), progress=False)


@pytest.mark.parametrize("search", ["prefilter", "batched"])
def test_lists_and_scores_do_not_depend_on_the_part_size(world: Path, tmp_path: Path, search: str) -> None:
    whole = _run(world, tmp_path / "whole", search=search, query_part_size=1000)
    parted = _run(world, tmp_path / "parted", search=search, query_part_size=7)
    for split in SPLITS:
        assert parted.lists[split].read_bytes() == whole.lists[split].read_bytes()
    score_files = [sorted(out.lists_dir.parent.glob("scores-*.safetensors")) for out in (whole, parted)]
    assert len(score_files[0]) == 2
    # equal scores (the files' metadata order is safetensors' own, not byte-stable)
    assert [f.name for f in score_files[0]] == [f.name for f in score_files[1]]
    assert all(_equal(CachedScores.load(a), CachedScores.load(b)) for a, b in zip(*score_files))
    assert not list(parted.lists_dir.parent.glob("parts-*"))  # merged, then removed


def test_a_killed_search_resumes_from_its_parts(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _run(world, tmp_path / "fresh", query_part_size=7)
    saved: list[int] = []
    killed_after = [5]
    real_save = QueryParts.save

    def save_then_die(self: QueryParts, part: int, scores: CachedScores) -> Path:
        if len(saved) == killed_after[0]:
            raise JobKilled
        saved.append(part)
        return real_save(self, part, scores)

    monkeypatch.setattr(QueryParts, "save", save_then_die)
    with pytest.raises(JobKilled):
        _run(world, tmp_path / "killed", query_part_size=7)
    train_parts = math.ceil(60 / 7)
    assert saved == [0, 1, 2, 3, 4] and train_parts > 5
    saved.clear()
    killed_after[0] = -1  # the rerun is not killed
    resumed = _run(world, tmp_path / "killed", query_part_size=7)
    assert saved[: train_parts - 5] == list(range(5, train_parts))  # only the missing train parts
    assert len(saved) == train_parts - 5 + math.ceil(20 / 7)
    for split in SPLITS:
        assert resumed.lists[split].read_bytes() == fresh.lists[split].read_bytes()

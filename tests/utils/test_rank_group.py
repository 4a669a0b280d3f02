"""The job's ranks: one process by default, torchrun's variables join a gloo group, and a
half-set environment is refused with what is missing."""

from __future__ import annotations

import pytest

from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.settings import RetrievalSettings
from raiha.utils.rank_group import (
    SINGLE_PROCESS,
    rank_group_from_environment,
    rank_group_from_torch_distributed,
)


def test_without_a_launcher_the_job_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group = rank_group_from_environment()
    assert group == SINGLE_PROCESS and group.is_zero and group.owns(5)
    group.barrier()  # returns at once
    assert rank_group_from_torch_distributed() == SINGLE_PROCESS


def test_a_world_size_without_torchrun_variables_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="RANK, MASTER_ADDR, MASTER_PORT is unset: start the job with torchrun"):
        rank_group_from_environment()


def test_search_low_lowers_only_the_searched_low_end() -> None:
    rule = RetrievalSettings(eps_a=0.9, max_refs=4, search_low=0.7)
    assert rule.search_config() == RetrievalConfig(eps_c=0.7, eps_a=0.7)
    assert rule.retrieval_config() == RetrievalConfig(eps_c=0.7, eps_a=0.9, max_refs=4)
    ranged = RetrievalSettings(eps_a_range=(0.6, 0.8), search_low=0.7)  # already lower
    assert ranged.search_config() == ranged.retrieval_config()
    assert RetrievalSettings().search_config() == RetrievalSettings().retrieval_config()
    with pytest.raises(ValueError, match="query_part_size must be >= 1"):
        RetrievalSettings(query_part_size=0)

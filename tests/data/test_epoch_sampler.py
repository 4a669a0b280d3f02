"""The shuffling sampler: every index once, an order fixed by (seed, epoch), epochs differ."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, RandomSampler

from raiha.data.epoch_sampler import EpochSeededRandomSampler


def _order(seed: int, epoch: int, n: int = 50) -> list[int]:
    sampler = EpochSeededRandomSampler(range(n), seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    first = _order(0, 3)
    assert sorted(first) == list(range(50))
    torch.manual_seed(123)  # the global RNG plays no part
    assert _order(0, 3) == first
    assert _order(0, 4) != first and _order(1, 3) != first


def test_the_loader_follows_set_epoch_like_lightning_calls_it() -> None:
    sampler = EpochSeededRandomSampler(range(10), seed=7)
    loader = DataLoader(range(10), batch_size=5, sampler=sampler)
    assert isinstance(loader.sampler, RandomSampler)  # DDP swaps in DistributedSampler
    sampler.set_epoch(2)
    seen = torch.cat(list(loader)).tolist()
    assert seen == _order(7, 2, 10)

"""A shuffling sampler whose order is a function of ``(seed, epoch)`` alone.

PyTorch's ``RandomSampler`` draws each epoch's order from the global RNG, whose state
a checkpoint does not hold: a run resumed at epoch ``k`` would see other orders than
the uninterrupted run from epoch ``k`` on. This sampler makes the order of epoch
``e`` ``randperm(n, seed=hash(seed, e))``, so a resumed run replays exactly the
uninterrupted one. Lightning calls ``set_epoch`` at every epoch start; under DDP it
replaces the sampler (a ``RandomSampler`` subclass) with its ``DistributedSampler``,
which is epoch-seeded the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import RandomSampler

from raiha.utils.seeding import keyed_generator


def epoch_permutation(length: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: int64 ``[length]``, a permutation of ``range(length)``."""
    return torch.randperm(length, generator=keyed_generator(f"shuffle:{seed}:{epoch}"))


class EpochSeededRandomSampler(RandomSampler):
    """Every index once per epoch, in an order fixed by ``(seed, epoch)``."""

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch`` (Lightning calls this at every epoch start)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        yield from epoch_permutation(len(self.data_source), self.seed, self.epoch).tolist()

    def __len__(self) -> int:
        return len(self.data_source)

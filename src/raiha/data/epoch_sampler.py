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

import hashlib
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import RandomSampler


def epoch_permutation(length: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: int64 ``[length]``, a permutation of ``range(length)``."""
    digest = hashlib.blake2b(f"shuffle:{seed}:{epoch}".encode(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))
    return torch.randperm(length, generator=generator)


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

"""Which process of a job this is, and how its processes wait for each other.

A job's work (the retrieval's queries) is split by rank; files are written by their
owner and merged by rank zero, and everyone waits at :meth:`RankGroup.barrier`. The group
comes from an initialised ``torch.distributed`` process group (Lightning's DDP, or
:func:`rank_group_from_environment` under ``torchrun`` / SLURM), else it is the one process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Long enough for rank zero to extract a whole gallery while the others wait.
DEFAULT_TIMEOUT = timedelta(hours=12)


def _no_wait() -> None:
    """The barrier of a job of one process."""


@dataclass(frozen=True)
class RankGroup:
    """``rank`` of ``world_size`` processes; ``barrier()`` returns once all have called it."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = field(default=_no_wait, compare=False)

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} of {self.world_size} processes is not a valid rank")

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    def owns(self, part: int) -> bool:
        """Whether part ``part`` of a job is this rank's (parts are dealt out round robin)."""
        return part % self.world_size == self.rank


SINGLE_PROCESS = RankGroup()


def rank_group_from_torch_distributed() -> RankGroup:
    """The initialised default process group as a :class:`RankGroup` (else one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE_PROCESS
    return RankGroup(dist.get_rank(), dist.get_world_size(), dist.barrier)


def rank_group_from_environment(timeout: timedelta = DEFAULT_TIMEOUT) -> RankGroup:
    """The job's group from ``torchrun`` / SLURM variables, joining (gloo) if not joined yet.

    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` are what ``torchrun``
    exports (SLURM users export them from ``SLURM_PROCID`` / ``SLURM_NTASKS``). Only
    barriers cross the group, so gloo serves CPU and GPU jobs alike. On a CUDA machine each
    rank's current device becomes GPU ``LOCAL_RANK``, so ``cuda`` settings mean its own GPU.
    """
    if dist.is_available() and dist.is_initialized():
        return rank_group_from_torch_distributed()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} is unset: start the job with "
            "torchrun (or export RANK, MASTER_ADDR and MASTER_PORT for each process)"
        )
    dist.init_process_group("gloo", timeout=timeout)
    if torch.cuda.is_available():  # "cuda" then means this rank's own GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    log.info("rank %d of %d joined the job's process group", dist.get_rank(), world_size)
    return rank_group_from_torch_distributed()

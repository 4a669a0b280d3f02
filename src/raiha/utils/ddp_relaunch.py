"""Make Lightning's DDP relaunch of ranks > 0 safe inside a Hydra multirun.

With ``strategy=ddp`` Lightning starts ranks 1..N-1 by re-running the command line
(``sys.argv``) with ``hydra.run.dir=<HydraConfig run.dir>``. Inside a multirun that
command still holds ``-m`` and every sweep value: each child would start a sweep of
its own (nested sweeps, ranks joining the wrong jobs), in a folder of its own. Called at
the start of every job, :func:`pin_relaunch_to_this_job` rewrites ``sys.argv`` to this
job's own overrides and points ``run.dir`` at this job's folder, so a child runs
exactly this job, as one more rank, in the same output folder.

The basic launcher runs a sweep's jobs one after the other in one process: after a DDP
job its process group and the rendezvous variables Lightning exported would make the
next job join the finished job's (gone) ranks. :func:`distributed_job_scope` closes the
group and restores those variables when a job ends (variables set by torchrun or SLURM
before the job stay as they were).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from omegaconf import read_write

log = logging.getLogger(__name__)


def pin_relaunch_to_this_job() -> list[str] | None:
    """Inside a Hydra multirun job: the child command's arguments (also set as ``sys.argv[1:]``).

    Outside Hydra or in a single run nothing changes and None is returned.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_config = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra app
        return None
    if hydra_config.mode != RunMode.MULTIRUN:
        return None
    overrides = [str(item) for item in hydra_config.overrides.task]
    sys.argv = [sys.argv[0], *overrides]
    with read_write(hydra_config):
        hydra_config.run.dir = hydra_config.runtime.output_dir
    log.debug("DDP children of this job will run: %s in %s", overrides, hydra_config.run.dir)
    return overrides


# what Lightning's launcher exports for the ranks of one job
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK")


@contextlib.contextmanager
def distributed_job_scope() -> Iterator[None]:
    """One Hydra job: pin DDP relaunches to it, and leave no process group or rendezvous
    variables behind for the next job of the same process."""
    before = {name: os.environ.get(name) for name in RENDEZVOUS_VARIABLES}
    pin_relaunch_to_this_job()
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

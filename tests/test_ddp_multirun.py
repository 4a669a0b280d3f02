"""A multirun of DDP jobs (``strategy=ddp``: Lightning re-runs the command line for rank 1)
with the basic launcher, which runs both jobs in one process: each job's rank 1 runs that
job alone, in that job's folder (no nested sweep, no stray run folder), and the second
job does not trip over the first job's process group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hydra_helpers import TINY_WORLD

pytestmark = pytest.mark.slow


def test_ddp_jobs_of_a_sweep_each_run_once_in_their_own_folder(tmp_path: Path) -> None:
    env = {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
           "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [
        sys.executable, "-m", "raiha.train", "-m", "seed=0,1", "trainer=ddp", "trainer.accelerator=cpu",
        "trainer.devices=2", "+debug=fdr", "logger=csv", *TINY_WORLD,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert output.count("#0 : seed=0") == 1 and output.count("#1 : seed=1") == 1  # no child started a sweep
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    assert not (tmp_path / "logs" / "train" / "runs").exists() and not (tmp_path / "outputs").exists()
    for job, seed in (("0", 0), ("1", 1)):
        folder = sweeps[0] / job
        assert json.loads((folder / "metrics.json").read_text())["all"]["n"] > 0
        child_log = (folder / "train_ddp_process_1.log").read_text()
        assert f"\nseed: {seed}\n" in child_log  # rank 1 ran this job's config
    assert sorted(path.name for path in sweeps[0].iterdir() if path.is_dir()) == ["0", "1"]

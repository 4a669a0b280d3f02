"""Sweeps: a 2-job multirun with the joblib launcher gives two complete output folders and
two offline W&B runs carrying their group and tags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hydra_helpers import TINY_WORLD

pytestmark = pytest.mark.slow


def test_joblib_multirun_gives_separate_complete_runs(tmp_path: Path) -> None:
    env = {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
           "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}  # fmt: skip
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "raiha.train", "-m", "hydra/launcher=local_parallel", "seed=0,1",
        "+debug=fdr", "logger=default", "group=joblib-sweep", "tags=[pytest,joblib]",
        f"hydra.sweep.dir={sweep}", *TINY_WORLD,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir() and path.name.isdigit())
    assert [job.name for job in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / "metrics.json").is_file() and (job / "train.log").is_file()
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1  # its own W&B run, not merged with the other job's
        raw = next(runs[0].glob("run-*.wandb")).read_bytes()
        assert b"joblib-sweep/sweep" in raw  # the group names the sweep: its runs together, apart from others
        assert b"pytest" in raw and b"joblib" in raw  # tags
    run_ids = {next((job / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[1] for job in jobs}
    assert len(run_ids) == 2
    assert not (tmp_path / "outputs").exists()

"""Crash safety: a training run SIGKILLed mid-epoch and resumed with ``ckpt_path=last``
ends with the same weights and test metrics as the uninterrupted run of the same seed,
in the same output folder (one run: one CSV log, one W&B run id)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.hydra_helpers import TINY_WORLD

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 4
KILL_AT_STEP = STEPS_PER_EPOCH + 2  # the third step of the second epoch


def _run(tmp_path: Path, run_dir: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
           "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
    command = [
        sys.executable, "-m", "raiha.train", "+experiment=raiha_synthetic", "+debug=limit", "logger=default",
        "trainer.max_epochs=3", f"trainer.limit_train_batches={STEPS_PER_EPOCH}", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "reference_seeds=[0]",
        "model.lr_constant_epochs=1", f"hydra.run.dir={run_dir}", *TINY_WORLD, *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]


def _logged_steps(run_dir: Path) -> dict[str, list[int]]:
    """For each column of ``csv/metrics.csv``, the steps at which it holds a value."""
    import csv

    with (run_dir / "csv" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    columns = sorted({key for row in rows for key in row} - {"step"})
    return {key: [int(row["step"]) for row in rows if row.get(key)] for key in columns}


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    done = _run(tmp_path, straight, [])
    assert done.returncode == 0, done.stderr[-3000:]

    killer = ["+callbacks.kill._target_=tests.kill_callback.KillAtStep", f"+callbacks.kill.step={KILL_AT_STEP}"]
    killed = _run(tmp_path, crashed, killer)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    first_epoch = torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)
    assert first_epoch["global_step"] == STEPS_PER_EPOCH and not (crashed / "metrics.json").exists()

    resumed = _run(tmp_path, crashed, ["ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr

    final_straight, final_resumed = _weights(straight), _weights(crashed)
    assert final_straight.keys() == final_resumed.keys()
    for name, tensor in final_straight.items():
        torch.testing.assert_close(final_resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    metrics_straight = json.loads((straight / "metrics.json").read_text())
    metrics_resumed = json.loads((crashed / "metrics.json").read_text())
    assert metrics_resumed["epochs_trained"] == metrics_straight["epochs_trained"] == 3
    for key in ("mse", "psnr", "fmse"):
        assert metrics_resumed["all"][key] == pytest.approx(metrics_straight["all"][key], rel=1e-5)

    # one run in the folder: one CSV log continued, one W&B run id for both processes
    assert sorted(path.name for path in (crashed / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]
    # the resumed CSV log holds the rows before the kill too: the same rows as the straight run
    assert _logged_steps(crashed) == _logged_steps(straight)
    wandb_runs = sorted((crashed / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2  # one folder per process start (synced into one run)
    assert len({run.name.rsplit("-", 1)[1] for run in wandb_runs}) == 1
    assert wandb_runs[0].name.rsplit("-", 1)[1] == (crashed / "wandb_run_id").read_text().strip()

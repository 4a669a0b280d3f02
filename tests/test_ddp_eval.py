"""``raiha.eval`` on 2 processes (gloo, CPU, ``ddp_spawn``) gives the metrics of 1 process:
same composites counted once (23 of them: the distributed sampler pads rank 1 with a
repeat, which must not count twice), same reference draws per seed, same numbers up to
float summation order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hydra_helpers import TINY_WORLD

pytestmark = pytest.mark.slow

NUM_TEST = 23  # odd: 2 ranks cannot split it evenly


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
            "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}  # fmt: skip


def _run(tmp_path: Path, module: str, overrides: list[str]) -> None:
    command = [sys.executable, "-m", module, "+experiment=raiha_synthetic", "logger=csv", *TINY_WORLD, *overrides]
    result = subprocess.run(command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_two_process_evaluation_equals_one_process(tmp_path: Path) -> None:
    train_dir = tmp_path / "train"
    _run(tmp_path, "raiha.train", ["+debug=limit", "trainer.max_epochs=1", "test=false", f"hydra.run.dir={train_dir}"])
    checkpoint = train_dir / "checkpoints" / "last.ckpt"
    common = [f"ckpt_path={checkpoint}", f"data.limit_test={NUM_TEST}", "data.references.test_only_listed=false",
              "data.eval_batch_size=5", "reference_seeds=[0,1]", "callbacks=none"]  # fmt: skip
    records = {}
    for devices in (1, 2):
        out = tmp_path / f"eval{devices}"
        trainer = ["trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2"] if devices == 2 else []
        _run(tmp_path, "raiha.eval", [*common, *trainer, f"hydra.run.dir={out}"])
        records[devices] = json.loads((out / "metrics.json").read_text())
    one, two = records[1], records[2]
    assert one["setting"] == two["setting"] == "reference"
    assert one["all"]["n"] == two["all"]["n"] == NUM_TEST
    for seed_one, seed_two in zip(one["per_seed"], two["per_seed"], strict=True):
        for group in ["all", *seed_one["subsets"]]:
            block_one = seed_one[group] if group == "all" else seed_one["subsets"][group]
            block_two = seed_two[group] if group == "all" else seed_two["subsets"][group]
            assert block_one["n"] == block_two["n"]
            for key in ("mse", "psnr", "fmse"):
                assert block_two[key] == pytest.approx(block_one[key], rel=1e-5), (group, key)
    # the two seeds drew different references: the per-seed results differ
    assert one["per_seed"][0]["all"]["mse"] != one["per_seed"][1]["all"]["mse"]

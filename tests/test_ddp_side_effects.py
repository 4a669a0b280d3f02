"""A 2-process (gloo, CPU, ``ddp_spawn``) run of full Raiha on the synthetic world: it
completes (the test results reach the launching process, which never sees the spawned
module's attributes), and leaves one world, one set of feature stores, one set of
reference lists and one run folder; the caches' build journals show each was built once,
on rank zero, and the run holds the retrieval report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raiha.io.build_journal import JOURNAL_NAME, read_journal
from tests.hydra_helpers import TINY_WORLD

pytestmark = pytest.mark.slow


def test_two_process_spawn_run_completes_with_one_set_of_caches(tmp_path: Path) -> None:
    env = {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
           "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [
        sys.executable, "-m", "raiha.train", "+experiment=raiha_synthetic", "trainer=ddp_spawn",
        "trainer.accelerator=cpu", "trainer.devices=2", "+debug=fdr", "logger=csv", "reference_seeds=[0,1]",
        *TINY_WORLD,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    runs = list((tmp_path / "logs" / "train" / "runs").glob("*/metrics.json"))
    assert len(runs) == 1
    record = json.loads(runs[0].read_text())
    assert record["setting"] == "reference" and len(record["per_seed"]) == 2 and record["all"]["n"] > 0
    assert len([path for path in (tmp_path / "data" / "synthetic").iterdir() if path.is_dir()]) == 1
    assert len(list((tmp_path / "data" / "retrieval").glob("*/*/manifest.json"))) == 3  # gallery + 2 composite stores
    assert len(list((tmp_path / "data" / "retrieval").glob("*/lists/*/summary.json"))) == 1
    # the build journals: every cache was built exactly once, by rank zero
    builds = [entry for journal in (tmp_path / "data").rglob(JOURNAL_NAME) for entry in read_journal(journal)]
    kinds = sorted(entry["kind"] for entry in builds)
    assert kinds == ["feature_store"] * 3 + ["reference_lists", "synthetic_world"], builds
    assert len({(entry["kind"], entry["name"]) for entry in builds}) == len(builds)
    assert {entry["rank"] for entry in builds} == {0}
    report = json.loads((runs[0].parent / "retrieval_report.json").read_text())
    assert set(report["ground_truth"]) == {"train", "test"} and report["splits"]["test"]["composites"] > 0

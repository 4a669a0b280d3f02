"""The run's W&B id lives in its folder; cache builds are journalled; DDP relaunches are
pinned to the job (outside a multirun nothing changes)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from raiha.io.build_journal import JOURNAL_NAME, read_journal, record_build
from raiha.utils.config import WANDB_RUN_ID_FILE, wandb_run_id
from raiha.utils.ddp_relaunch import distributed_job_scope, pin_relaunch_to_this_job


def test_wandb_run_id_is_kept_per_folder_and_race_free(tmp_path: Path) -> None:
    first = wandb_run_id(str(tmp_path / "run"))
    assert len(first) == 12 and (tmp_path / "run" / WANDB_RUN_ID_FILE).read_text().strip() == first
    assert wandb_run_id(str(tmp_path / "run")) == first  # a resumed run: the same W&B run
    assert wandb_run_id(str(tmp_path / "other")) != first  # a new folder: a new run
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(wandb_run_id(str(tmp_path / "race")))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == 8


def test_build_journal_appends_one_line_per_build(tmp_path: Path) -> None:
    journal = record_build(tmp_path / "caches" / "world-a", "synthetic_world", 1.23456, cache_key="a")
    record_build(tmp_path / "caches" / "world-b", "synthetic_world", 2.0)
    assert journal == tmp_path / "caches" / JOURNAL_NAME
    entries = read_journal(journal)
    assert [entry["name"] for entry in entries] == ["world-a", "world-b"]
    assert entries[0]["seconds"] == 1.235 and entries[0]["cache_key"] == "a" and entries[0]["rank"] == 0
    assert read_journal(tmp_path / "missing.jsonl") == []


def test_relaunch_pinning_does_nothing_outside_a_multirun(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["raiha.train", "-m", "seed=0,1"])
    assert pin_relaunch_to_this_job() is None
    assert sys.argv == ["raiha.train", "-m", "seed=0,1"]
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setenv("NODE_RANK", "3")  # set before the job (e.g. by SLURM): kept
    with distributed_job_scope():
        os.environ["MASTER_PORT"] = "12345"  # what Lightning exports
        os.environ["NODE_RANK"] = "0"
    assert "MASTER_PORT" not in os.environ and os.environ["NODE_RANK"] == "3"

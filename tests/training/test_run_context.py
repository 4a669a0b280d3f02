"""Resume switches: ckpt_path null | last | auto | a path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raiha.models.checkpoint_io import CheckpointError
from raiha.training.run_context import resolve_resume_checkpoint


def test_resume_switches(tmp_path: Path) -> None:
    assert resolve_resume_checkpoint(None, tmp_path) is None
    assert resolve_resume_checkpoint("auto", tmp_path) is None  # nothing to resume: fresh run
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        resolve_resume_checkpoint("last", tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, last)
    assert resolve_resume_checkpoint("auto", tmp_path) == str(last)
    assert resolve_resume_checkpoint("last", tmp_path) == str(last)
    assert resolve_resume_checkpoint(str(last), tmp_path) == str(last)
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_resume_checkpoint(str(tmp_path / "nope.ckpt"), tmp_path)
    last.write_bytes(last.read_bytes()[:100])  # a copy cut short / a killed write
    for switch in ("last", "auto"):
        with pytest.raises(CheckpointError, match="last.ckpt cannot be read.*truncated"):
            resolve_resume_checkpoint(switch, tmp_path)

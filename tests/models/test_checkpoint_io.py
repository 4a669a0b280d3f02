"""Safe checkpoint loading with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from raiha.models.checkpoint_io import CheckpointError, load_module_weights


def test_round_trip_of_a_lightning_style_checkpoint(tmp_path: Path) -> None:
    source = nn.Linear(3, 2)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    target = nn.Linear(3, 2)
    payload = load_module_weights(target, path)
    assert payload["epoch"] == 3
    assert torch.equal(target.weight, source.weight)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_module_weights(nn.Linear(3, 2), tmp_path / "absent.ckpt")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": nn.Linear(30, 20).state_dict()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_module_weights(nn.Linear(30, 20), path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": nn.Linear(3, 2).state_dict(), "object": Path("/x")}, path)
    with pytest.raises(CheckpointError, match="refuses to load for safety"):
        load_module_weights(nn.Linear(3, 2), path)


def test_wrong_keys_and_shapes_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save(nn.Sequential(nn.Linear(3, 4)).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"2 missing keys \['bias', 'weight'\], 2 unexpected keys"):
        load_module_weights(nn.Linear(3, 4), path)
    torch.save(nn.Linear(3, 5).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(5, 3\) vs model \(4, 3\)"):
        load_module_weights(nn.Linear(3, 4), path)


def test_pickled_objects_are_refused_for_safety_and_a_trusted_file_converts(tmp_path: Path) -> None:
    """Issue 17 item 5: the message names the safety refusal, torch's reason in full, the fix."""
    from raiha.models.checkpoint_io import convert_trusted_checkpoint, read_checkpoint

    source = nn.Linear(3, 2)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": source.state_dict(), "object": Path("/x"), "epoch": 2}, path)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "refuses to load for safety" in message and "truncated" not in message
    assert "pathlib.PosixPath" in message and "if you trust this class/function." in message
    assert "convert_trusted_checkpoint" in message
    safe = convert_trusted_checkpoint(path, tmp_path / "model.safe.ckpt")
    payload = load_module_weights(target := nn.Linear(3, 2), safe)
    assert payload["epoch"] == 2 and "object" not in payload
    assert torch.equal(target.weight, source.weight)

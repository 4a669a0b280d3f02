"""init_from files: raiha checkpoints, the authors' generator, plain state dicts, and misfits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raiha.models.authors_checkpoint import save_authors_generator
from raiha.models.checkpoint_io import CheckpointError
from raiha.models.init_weights import load_initial_weights, read_initial_weights
from raiha.models.model_card import MODEL_CARD_KEY
from raiha.models.registry import create_harmonizer

UNET = {"name": "unet", "base_width": 4, "depth": 3, "attention": "plain"}
RHNET = {"name": "rhnet", "base_width": 4, "attention": "plain", "semantic_channels": 0}


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True))


def test_a_raiha_checkpoint_fills_the_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_harmonizer(**UNET)
    card = {"version": 1, "net": {"_target_": "raiha.models.registry.create_harmonizer", **UNET}, "image_size": 32}
    path = tmp_path / "last.ckpt"
    state = {f"net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, MODEL_CARD_KEY: card, "epoch": 3}, path)
    target = create_harmonizer(**UNET)
    assert not _same_weights(source, target)
    weights = load_initial_weights(target, path)
    assert weights.kind == "raiha" and weights.card == card
    assert _same_weights(source, target)


def test_the_authors_generator_and_plain_state_dicts(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_harmonizer(**RHNET)
    save_authors_generator(source, tmp_path / "latest_net_G.pth")
    target = create_harmonizer(**RHNET)
    assert load_initial_weights(target, tmp_path / "latest_net_G.pth").kind == "authors"
    assert _same_weights(source, target)
    torch.save(source.state_dict(), tmp_path / "plain.pth")
    other = create_harmonizer(**RHNET)
    assert load_initial_weights(other, tmp_path / "plain.pth").kind == "state_dict"
    assert _same_weights(source, other)


def test_incompatible_files_name_missing_and_unexpected_keys(tmp_path: Path) -> None:
    save_authors_generator(create_harmonizer(**RHNET), tmp_path / "authors.pth")
    with pytest.raises(CheckpointError, match=r"authors.pth \(authors weights\) does not fit .* missing keys .* unexpected keys"):
        load_initial_weights(create_harmonizer(**UNET), tmp_path / "authors.pth")
    card = {"version": 1, "net": {"_target_": "raiha.models.registry.create_harmonizer", **UNET}, "image_size": 32}
    state = {f"net.{k}": v for k, v in create_harmonizer(**UNET).state_dict().items()}
    torch.save({"state_dict": state, MODEL_CARD_KEY: card}, tmp_path / "unet.ckpt")
    with pytest.raises(CheckpointError, match=r"shape mismatches.*model card says .*'base_width': 4"):
        load_initial_weights(create_harmonizer(**{**UNET, "base_width": 8}), tmp_path / "unet.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        read_initial_weights(tmp_path / "junk.ckpt")
    torch.save({"epoch": 3}, tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match="empty.ckpt"):
        read_initial_weights(tmp_path / "empty.ckpt")

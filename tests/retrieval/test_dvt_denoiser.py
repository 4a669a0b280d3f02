"""DVT denoiser: golden parity with the published format, loader errors, grid helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raiha.retrieval.features.dvt_denoiser import DvtDenoiser, load_dvt_denoiser
from raiha.retrieval.features.grids import mask_to_cells, to_channels_first, to_channels_last


def shared_file(shared_data_dir: Path, relative: str) -> Path:
    path = shared_data_dir / relative
    if not path.exists():
        pytest.skip(f"shared file {path} is absent")
    return path


def _save_published(denoiser: DvtDenoiser, path: Path) -> Path:
    torch.save({"denoiser": denoiser.state_dict()}, path)
    return path


def test_golden_output_is_reproduced(shared_data_dir: Path) -> None:
    checkpoint = shared_file(shared_data_dir, "golden/dvt_denoiser_s384.pth")
    golden_path = shared_file(shared_data_dir, "golden/dvt_denoiser_s384_io.pt")
    golden = torch.load(golden_path, map_location="cpu", weights_only=True)
    denoiser = load_dvt_denoiser(checkpoint, expected_feature_dim=384)
    assert denoiser.pos_grid == (37, 37)
    with torch.no_grad():
        output = denoiser(golden["x"].float())  # [1, 28, 36, 384]
    assert output.shape == golden["y"].shape == (1, 28, 36, 384)
    assert (output - golden["y"]).abs().max().item() < 1e-5  # measured: exactly 0


def test_round_trip_and_any_grid(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = DvtDenoiser(feature_dim=128).eval()
    loaded = load_dvt_denoiser(_save_published(original, tmp_path / "d.pth"))
    features = torch.randn(2, 5, 7, 128)  # [B, h, w, C], not the 37 x 37 training grid
    with torch.no_grad():
        assert torch.equal(loaded(features), original(features))
        # the block mixes tokens: changing one patch changes the others
        changed = features.clone()
        changed[:, 0, 0] += 1.0
        assert not torch.allclose(loaded(changed)[:, 4, 6], loaded(features)[:, 4, 6])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_dvt_denoiser(tmp_path / "nothing.pth")


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match=r"bad\.pth.*torch\.load"):
        load_dvt_denoiser(bad)


def test_wrong_keys_are_listed(tmp_path: Path) -> None:
    state = DvtDenoiser(feature_dim=64).state_dict()
    state["denoiser.extra.weight"] = state.pop("denoiser.mlp.fc2.weight")
    path = tmp_path / "keys.pth"
    torch.save({"denoiser": state}, path)
    with pytest.raises(
        ValueError,
        match=r"missing \['denoiser.mlp.fc2.weight'\], unexpected \['denoiser.extra.weight'\]",
    ):
        load_dvt_denoiser(path)
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match="no 'denoiser' key"):
        load_dvt_denoiser(path)


def test_wrong_shape_names_key_and_shapes(tmp_path: Path) -> None:
    state = DvtDenoiser(feature_dim=64).state_dict()
    state["denoiser.mlp.fc1.weight"] = torch.zeros(128, 64)
    path = tmp_path / "shape.pth"
    torch.save({"denoiser": state}, path)
    with pytest.raises(
        ValueError, match=r"'denoiser.mlp.fc1.weight' has shape \(128, 64\).*needs \(256, 64\)"
    ):
        load_dvt_denoiser(path)


def test_width_mismatch_with_backbone(tmp_path: Path) -> None:
    path = _save_published(DvtDenoiser(feature_dim=64), tmp_path / "w.pth")
    with pytest.raises(ValueError, match="width 64 but the backbone has width 768"):
        load_dvt_denoiser(path, expected_feature_dim=768)


def test_channel_layout_round_trip() -> None:
    grid = torch.randn(2, 8, 3, 5)  # [B, C, h, w]
    last = to_channels_last(grid)
    assert last.shape == (2, 3, 5, 8)
    assert torch.equal(last[1, 2, 4], grid[1, :, 2, 4])
    assert torch.equal(to_channels_first(last), grid)


def test_mask_to_cells_marks_any_touched_cell() -> None:
    mask = torch.zeros(30, 40)
    mask[0, 39] = 1.0  # one pixel in the top-right cell
    mask[29, 0] = 0.2  # soft values > 0 count
    cells = mask_to_cells(mask, (3, 4))
    assert cells.dtype == torch.bool and cells.shape == (3, 4)
    assert cells.sum() == 2 and cells[0, 3] and cells[2, 0]
    batched = mask_to_cells(mask[None, None].repeat(2, 1, 1, 1), (3, 4))
    assert batched.shape == (2, 3, 4) and torch.equal(batched[1], cells)

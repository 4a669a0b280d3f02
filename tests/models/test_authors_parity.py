"""Golden parity with the authors' generator, and their checkpoint format both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from raiha.models.authors_checkpoint import (
    AUTHORS_TO_RAIHA,
    CheckpointError,
    convert_authors_state_dict,
    load_authors_generator,
    save_authors_generator,
    to_authors_state_dict,
)
from raiha.models.layers.fusion import key_attention_map
from raiha.models.rhnet import RHNet

GOLDEN = "golden/authors_rhnet_w8.pt"
OUT_TOLERANCE = 1e-5
ATT_TOLERANCE = 2.5e-4  # the golden map is stored in fp16


@pytest.fixture(scope="module")
def golden(shared_data_dir: Path) -> dict[str, Any]:
    path = shared_data_dir / GOLDEN
    if not path.exists():
        pytest.skip(f"shared file {path} is absent")
    return torch.load(path, map_location="cpu", weights_only=True)


def _small_authors_state(**rhnet_kwargs: Any) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = RHNet(base_width=4, semantic_channels=6, **rhnet_kwargs)
    for rain_parameter in (p for n, p in model.named_parameters() if "norm." in n):
        torch.nn.init.normal_(rain_parameter, 0, 0.1)  # nonzero so a wrong mapping shows
    return to_authors_state_dict(model)


@pytest.mark.parametrize("case", ["single", "with_ref"])
def test_golden_parity(golden: dict[str, Any], case: str) -> None:
    model = load_authors_generator(golden["state_dict"]).eval()
    inputs = golden["cases"][case]
    composite, mask = inputs["x"].float(), inputs["mask"].float()
    with torch.no_grad():
        output = model(composite, mask, inputs["dvt"].float())
    assert (output.image - inputs["out"]).abs().max() <= OUT_TOLERANCE
    attention_map = key_attention_map(output.attention, composite.shape[-2:])
    assert (attention_map - inputs["att"].float()).abs().max() <= ATT_TOLERANCE


def test_inferred_configuration(golden: dict[str, Any]) -> None:
    model = load_authors_generator(golden["state_dict"])
    assert model.base_width == golden["base_width"] == 8
    assert model.attention_mode == "sgf" and model.fusion.semantic_channels == 768
    assert model.fusion.query_projection is model.fusion.key_projection
    assert not model.input_mask_channel
    assert all(model.decoder[stage].region_conv is not None for stage in (4, 5, 6))


def test_golden_round_trip_keeps_their_keys_and_values(golden: dict[str, Any]) -> None:
    authors = golden["state_dict"]
    exported = to_authors_state_dict(load_authors_generator(authors))
    assert set(exported) == set(authors) and len(exported) == 58
    for key, value in authors.items():
        expected = torch.zeros_like(value) if ".conv_guide." in key else value
        torch.testing.assert_close(exported[key], expected, rtol=0, atol=0)


def test_conversion_drops_the_unused_guide_and_shares_the_projection(
    golden: dict[str, Any],
) -> None:
    converted = convert_authors_state_dict(golden["state_dict"], base_width=8)
    assert not any("guide" in key for key in converted)
    assert converted["fusion.query_projection.weight"] is converted["fusion.key_projection.weight"]
    assert (
        converted["decoder.2.norm.foreground_gamma"]
        is golden["state_dict"]["model_layer9norm.foreground_gamma"]
    )
    with pytest.raises(CheckpointError, match="base_width=16 given"):
        convert_authors_state_dict(golden["state_dict"], base_width=16)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"shared_projection": False},
        {"attention": "plain"},
        {"attention": "none", "region_conv": False},
    ],
)
def test_raiha_to_authors_to_raiha(variant: dict[str, Any]) -> None:
    authors = _small_authors_state(**variant)
    assert all(key in AUTHORS_TO_RAIHA for key in authors if ".conv_guide." not in key)
    reloaded = load_authors_generator(authors)
    assert reloaded.attention_mode == variant.get("attention", "sgf")
    original = RHNet(base_width=4, semantic_channels=6, **variant)
    original.load_state_dict(convert_authors_state_dict(authors))
    for key, value in original.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, rtol=0, atol=0)


def test_wrapped_file_with_module_prefix(tmp_path: Path) -> None:
    authors = _small_authors_state()
    path = tmp_path / "latest_net_G.pth"
    torch.save(
        {"netG": {f"module.{key}": value for key, value in authors.items()}, "epoch": 3}, path
    )
    model = load_authors_generator(path)
    torch.testing.assert_close(
        model.decoder[2].norm.foreground_gamma, authors["model_layer9norm.foreground_gamma"]
    )


def test_save_then_load(tmp_path: Path) -> None:
    model = RHNet(base_width=4, semantic_channels=6)
    path = save_authors_generator(model, tmp_path / "export" / "net_G.pth")
    assert set(torch.load(path, weights_only=True)) == set(to_authors_state_dict(model))
    reloaded = load_authors_generator(path)
    torch.testing.assert_close(reloaded.head.weight, model.head.weight, rtol=0, atol=0)


def test_missing_key_is_listed() -> None:
    authors = _small_authors_state()
    del authors["model_layer9norm.foreground_gamma"]
    with pytest.raises(
        CheckpointError, match=r"1 missing keys \['model_layer9norm.foreground_gamma'\]"
    ):
        load_authors_generator(authors)


def test_unexpected_key_is_listed() -> None:
    authors = _small_authors_state()
    authors["model_layer14.1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \['model_layer14.1.weight'\]"):
        load_authors_generator(authors)
    with pytest.raises(CheckpointError, match="not part of the authors' RHNet"):
        convert_authors_state_dict(authors)


def test_wrong_shape_names_both_shapes() -> None:
    authors = _small_authors_state()
    authors["model_layer9.1.weight"] = torch.zeros(64, 16, 4, 4)
    with pytest.raises(
        CheckpointError,
        match=r"model_layer9.1.weight: checkpoint \(64, 16, 4, 4\) vs rhnet decoder.2.conv.weight \(64, 32, 4, 4\)",
    ):
        load_authors_generator(authors)
    with pytest.raises(
        CheckpointError,
        match=r"K_conv.bias: checkpoint \(64,\) vs rhnet fusion.key_projection.bias \(128,\)",
    ):
        load_authors_generator(_small_authors_state(), base_width=8)


def test_garbage_and_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth cannot be read"):
        load_authors_generator(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_authors_generator(tmp_path / "absent.pth")
    foreign = tmp_path / "foreign.pth"
    torch.save({"epoch": 3, "lr": 0.1}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pth holds no generator state dict"):
        load_authors_generator(foreign)
    other_net = tmp_path / "other_net.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, other_net)
    with pytest.raises(CheckpointError, match="other_net.pth: not an authors' generator"):
        load_authors_generator(other_net)

"""The light U-Net harmonizer and the registry."""

from __future__ import annotations

import pytest
import torch

from raiha.models.harmonizer_output import paste_foreground
from raiha.models.registry import create_harmonizer, list_harmonizers


def _inputs(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    composite = torch.rand(2, 3, size, size) * 2 - 1
    mask = torch.zeros(2, 1, size, size)
    mask[:, :, 8:20, 4:16] = 1
    return composite, mask


def test_registry_lists_and_refuses() -> None:
    assert "unet" in list_harmonizers()
    with pytest.raises(ValueError, match="unknown harmonizer 'nope'"):
        create_harmonizer("nope")


@pytest.mark.parametrize("attention", ["none", "plain"])
@pytest.mark.parametrize("output_mode", ["residual", "image", "gain"])
def test_shapes_range_and_attention(attention: str, output_mode: str) -> None:
    net = create_harmonizer("unet", base_width=8, depth=3, attention=attention, output_mode=output_mode).eval()
    composite, mask = _inputs()
    output = net(composite, mask)
    assert output.image.shape == composite.shape
    assert output.image.min() >= -1 and output.image.max() <= 1
    if attention == "none":
        assert output.attention is None
    else:
        assert output.attention.weights.shape == (2, 16, 16)  # 32 px / 8 = 4 x 4 cells


def test_attention_at_a_finer_stride_than_the_bottleneck() -> None:
    net = create_harmonizer("unet", base_width=8, depth=4, attention_stride=8).eval()
    output = net(*_inputs())
    assert output.attention.weights.shape == (2, 16, 16)


def test_sgf_mode_uses_the_semantic_grid() -> None:
    net = create_harmonizer("unet", base_width=8, depth=3, attention="sgf", semantic_channels=5)
    composite, mask = _inputs()
    semantic = torch.randn(2, 5, 4, 4)
    first = net(composite, mask, semantic).image
    second = net(composite, mask, semantic * -1).image
    assert not torch.allclose(first, second)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attention": "cross"}, "unknown attention"),
        ({"output_mode": "delta"}, "output_mode"),
        ({"depth": 2, "attention_stride": 8}, "attention_stride"),
        ({"attention": "sgf"}, "semantic_channels"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_harmonizer("unet", **kwargs)


def test_paste_keeps_the_background_and_gradients_reach_every_parameter() -> None:
    net = create_harmonizer("unet", base_width=8, depth=3)
    composite, mask = _inputs()
    pasted = paste_foreground(net(composite, mask).image, composite, mask)
    assert torch.equal(pasted[mask.expand_as(pasted) == 0], composite[mask.expand_as(composite) == 0])
    pasted.square().mean().backward()
    without_grad = [name for name, p in net.named_parameters() if p.grad is None]
    assert without_grad == []


def test_reference_concatenated_to_the_right_serves_only_as_keys() -> None:
    from raiha.models.reference_input import harmonize

    net = create_harmonizer("unet", base_width=8, depth=3, attention="sgf", semantic_channels=4).eval()
    composite, mask = _inputs()
    reference = torch.rand_like(composite) * 2 - 1
    semantic, reference_semantic = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    output = harmonize(net, composite, mask, reference=reference, semantic=semantic,
                       reference_semantic=reference_semantic)
    assert output.image.shape == composite.shape
    weights = output.attention.weights  # [B, 4*8 query cells, 4*8 key cells]
    assert weights.shape == (2, 32, 32)
    reference_columns = torch.arange(32).remainder(8) >= 4  # right half of each grid row
    assert weights[:, :, reference_columns].sum() > 0  # foreground looks into the reference
    query_rows = weights.sum(dim=2) > 0
    assert not query_rows[:, reference_columns].any()  # reference cells never query
    with pytest.raises(ValueError, match="reference's semantic grid"):
        harmonize(net, composite, mask, reference=reference, semantic=semantic)


def test_a_missing_reference_contributes_no_keys() -> None:
    from raiha.models.reference_input import harmonize

    net = create_harmonizer("unet", base_width=8, depth=3).eval()
    composite, mask = _inputs()
    reference = torch.rand_like(composite) * 2 - 1
    valid = torch.tensor([True, False])
    output = harmonize(net, composite, mask, reference=reference, reference_valid=valid)
    reference_columns = torch.arange(32).remainder(8) >= 4
    weights = output.attention.weights
    assert weights[0][:, reference_columns].sum() > 0
    assert weights[1][:, reference_columns].sum() == 0


def test_gain_output_relights_the_composite_multiplicatively() -> None:
    """``output_mode='gain'``: a head that outputs the constant log gain g gives
    ``(x + o) * exp(g) - o`` per channel on colours in [0, 1]; g = 0 is the identity."""
    from raiha.models.unet import GAIN_OFFSET

    net = create_harmonizer("unet", base_width=8, depth=3, attention="none", output_mode="gain").eval()
    composite, mask = _inputs()
    log_gain = torch.tensor([0.0, -0.5, 0.3])
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(log_gain)
        image = net(composite, mask).image
    colour = (composite + 1) / 2
    expected = ((colour + GAIN_OFFSET) * log_gain.exp().view(1, 3, 1, 1) - GAIN_OFFSET).clamp(0, 1) * 2 - 1
    torch.testing.assert_close(image, expected)
    torch.testing.assert_close(image[:, 0], composite[:, 0])  # g = 0: unchanged
    assert (image[:, 1] < composite[:, 1]).all()  # g < 0 darkens every pixel


def test_sgf_at_stride_4_upsamples_the_one_eighth_semantic_grid() -> None:
    """The semantic grid stays at 1/8 (the extractors' grid); attention at stride 4 resamples
    it to its own 2x finer grid, and the grid still steers the attention."""
    torch.manual_seed(5)
    net = create_harmonizer(
        "unet", base_width=8, depth=3, attention="sgf", semantic_channels=5, attention_stride=4
    ).eval()
    composite, mask = _inputs()  # 32 px: 8 x 8 cells at stride 4
    semantic = torch.randn(2, 5, 4, 4)  # 1/8
    first = net(composite, mask, semantic).attention.weights
    second = net(composite, mask, -semantic).attention.weights
    assert first.shape == (2, 64, 64)
    assert not torch.allclose(first, second)

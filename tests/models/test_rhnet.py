"""The authors' harmonizer ``rhnet`` and its dynamic region-aware convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raiha.models.layers.drconv import RegionAwareConv
from raiha.models.layers.norms import RegionAwareInstanceNorm
from raiha.models.registry import create_harmonizer, list_harmonizers
from raiha.models.rhnet import RHNet


def _inputs(height: int, width: int, semantic_channels: int = 768) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    composite = torch.rand(1, 3, height, width) * 2 - 1
    mask = torch.zeros(1, 1, height, width)
    mask[:, :, height // 4 : height // 2, width // 8 : width // 4] = 1
    semantic = torch.randn(1, semantic_channels, height // 8, width // 8)
    return composite, mask, semantic


def _naive_region_conv(
    conv: RegionAwareConv, features: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The authors' per-sample loop: one F.conv2d per sample with its generated kernels."""
    kernels = conv.region_kernels(features)  # [B, 2, out, in]
    outputs = []
    for sample, sample_kernels in zip(features, kernels, strict=True):
        weight = sample_kernels.reshape(-1, conv.in_channels, 1, 1)  # [2*out, in, 1, 1]
        region_outputs = F.conv2d(sample[None], weight).view(
            2, conv.out_channels, *features.shape[-2:]
        )
        sample_mask = F.interpolate(
            mask[len(outputs)][None], size=features.shape[-2:], mode="nearest"
        )[0]
        outputs.append(region_outputs[0] * sample_mask + region_outputs[1] * (1 - sample_mask))
    return torch.stack(outputs)


def test_parameter_count_at_width_32() -> None:
    model = RHNet(base_width=32, semantic_channels=768)
    count = sum(p.numel() for p in model.parameters())
    assert count == 11_460_271  # SPEC 4: about 11.5 M trainable parameters
    unique_projection = model.fusion.query_projection is model.fusion.key_projection
    assert unique_projection


def test_registered_and_built_by_name() -> None:
    assert "rhnet" in list_harmonizers()
    model = create_harmonizer("rhnet", base_width=4, attention="plain")
    assert isinstance(model, RHNet) and model.fusion.semantic_channels == 0


@pytest.mark.parametrize(("height", "width"), [(256, 256), (256, 512)])
def test_shapes_at_width_8(height: int, width: int) -> None:
    model = RHNet(base_width=8).eval()
    composite, mask, semantic = _inputs(height, width)
    with torch.no_grad():
        output = model(composite, mask, semantic)
    assert output.image.shape == (1, 3, height, width)
    assert output.image.abs().max() < 1  # Tanh
    cells = (height // 8) * (width // 8)
    assert output.attention.weights.shape == (1, cells, cells)
    assert output.attention.features.shape == (1, 128, height // 8, width // 8)


def test_attention_modes() -> None:
    composite, mask, semantic = _inputs(64, 64, semantic_channels=5)
    assert RHNet(base_width=4, attention="none")(composite, mask).attention is None
    assert RHNet(base_width=4, attention="plain")(composite, mask).attention is not None
    sgf = RHNet(base_width=4, semantic_channels=5)
    with pytest.raises(ValueError, match="needs the semantic grid"):
        sgf(composite, mask)
    assert not torch.allclose(
        sgf(composite, mask, semantic).image, sgf(composite, mask, -semantic).image
    )


def test_unshared_projection_has_two_projections() -> None:
    model = RHNet(base_width=4, semantic_channels=5, shared_projection=False)
    assert model.fusion.query_projection is not model.fusion.key_projection


def test_mask_input_channel_changes_the_stem() -> None:
    model = RHNet(base_width=4, attention="none", input_mask_channel=True)
    assert model.stem.conv.weight.shape == (4, 4, 3, 3)
    composite, mask, _ = _inputs(32, 32)
    assert not torch.allclose(model(composite, mask).image, model(composite, 1 - mask).image)


def test_init_follows_the_authors() -> None:
    model = RHNet(base_width=8, semantic_channels=16)
    bottleneck = model.bottleneck.weight
    assert abs(bottleneck.std().item() - 0.02) < 0.002 and abs(bottleneck.mean().item()) < 0.002
    assert torch.count_nonzero(model.head.bias) == 0
    rain_layers = [m for m in model.modules() if isinstance(m, RegionAwareInstanceNorm)]
    assert len(rain_layers) == 5
    assert all(torch.count_nonzero(p) == 0 for layer in rain_layers for p in layer.parameters())
    region_convs = [stage.region_conv for stage in model.decoder if stage.region_conv is not None]
    assert [conv.in_channels for conv in region_convs] == [64, 32, 16]


@pytest.mark.parametrize(
    ("composite_shape", "mask_shape", "message"),
    [
        ((1, 3, 60, 64), (1, 1, 60, 64), "multiples of 8"),
        ((1, 3, 64, 64), (1, 1, 32, 32), "mask is"),
    ],
)
def test_bad_inputs_are_named(composite_shape: tuple, mask_shape: tuple, message: str) -> None:
    model = RHNet(base_width=4, attention="plain")
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(composite_shape), torch.zeros(mask_shape))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="unknown attention"):
        RHNet(attention="cross")
    with pytest.raises(ValueError, match="semantic_channels > 0"):
        RHNet(attention="sgf", semantic_channels=0)


def test_region_conv_matches_the_per_sample_loop() -> None:
    torch.manual_seed(1)
    conv = RegionAwareConv(6, 5)
    for module in (conv.context_projection, conv.kernel_projection):
        torch.nn.init.normal_(module.weight, 0, 0.5)
        torch.nn.init.normal_(module.bias, 0, 0.5)
    features = torch.randn(3, 6, 8, 8)
    mask = (torch.rand(3, 1, 32, 32) > 0.5).float()
    expected = _naive_region_conv(conv, features, mask)
    torch.testing.assert_close(conv(features, mask), expected, rtol=1e-5, atol=1e-6)


def test_region_conv_uses_the_foreground_kernel_inside_the_mask() -> None:
    torch.manual_seed(2)
    conv = RegionAwareConv(4, 4)
    torch.nn.init.normal_(conv.kernel_projection.weight, 0, 1.0)
    features = torch.randn(2, 4, 6, 6)
    kernels = conv.region_kernels(features)  # [B, 2, out, in]
    foreground_only = torch.einsum("boi,bihw->bohw", kernels[:, 0], features)
    background_only = torch.einsum("boi,bihw->bohw", kernels[:, 1], features)
    torch.testing.assert_close(conv(features, torch.ones(2, 1, 12, 12)), foreground_only)
    torch.testing.assert_close(conv(features, torch.zeros(2, 1, 12, 12)), background_only)
    assert not torch.allclose(foreground_only, background_only)

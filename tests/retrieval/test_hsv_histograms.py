"""Per-patch HSV histograms: identity, sensitivity to relighting, hue wrap-around, grey pixels."""

from __future__ import annotations

import math

import pytest
import torch
from kornia.color import hsv_to_rgb

from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig, hsv_patch_histograms


def _histogram(rgb01: torch.Tensor, config: HsvHistogramConfig | None = None) -> torch.Tensor:
    """One-cell histogram ``[D]`` of an RGB patch ``[1, 3, H, W]`` in ``[0, 1]``."""
    return hsv_patch_histograms(rgb01 * 2 - 1, (1, 1), config)[0, 0, 0]


def _solid(hue_degrees: float, saturation: float = 0.8, value: float = 0.7) -> torch.Tensor:
    hsv = (
        torch.tensor([hue_degrees / 180 * math.pi, saturation, value])
        .view(1, 3, 1, 1)
        .expand(1, 3, 8, 8)
    )
    return hsv_to_rgb(hsv.contiguous())  # [1, 3, 8, 8]


@pytest.fixture
def textured() -> torch.Tensor:
    return (
        torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    )  # [1, 3, 32, 32]


def test_shape_and_unit_norm() -> None:
    config = HsvHistogramConfig()
    histograms = hsv_patch_histograms(torch.rand(2, 3, 50, 70) * 2 - 1, (4, 5), config)
    assert histograms.shape == (2, 4, 5, config.dim) and config.dim == 9 * 3 * 4
    assert torch.allclose(histograms.norm(dim=-1), torch.ones(2, 4, 5), atol=1e-5)
    assert (histograms >= 0).all()
    marginal = HsvHistogramConfig(layout="marginal")
    assert hsv_patch_histograms(torch.zeros(1, 3, 8, 8), (2, 2), marginal).shape == (
        1,
        2,
        2,
        9 + 3 + 4,
    )


def test_identical_patches_have_cosine_one(textured: torch.Tensor) -> None:
    tiled = torch.cat(
        [textured, textured], dim=3
    )  # [1, 3, 32, 64]: two identical cells side by side
    histograms = hsv_patch_histograms(tiled * 2 - 1, (1, 2))
    assert torch.dot(histograms[0, 0, 0], histograms[0, 0, 1]).item() == pytest.approx(
        1.0, abs=1e-6
    )


@pytest.mark.parametrize(
    "relight",
    [lambda x: (x * torch.tensor([1.3, 1.0, 0.7]).view(1, 3, 1, 1)).clamp(0, 1), lambda x: x * 0.6],
    ids=["colour-gains", "darkened"],
)
def test_relit_patch_falls_below_paper_threshold(textured: torch.Tensor, relight) -> None:
    cosine = torch.dot(_histogram(textured), _histogram(relight(textured))).item()
    assert cosine < 0.9


def test_joint_layout_is_more_sensitive_than_marginals(textured: torch.Tensor) -> None:
    marginal = HsvHistogramConfig(layout="marginal")
    joint_cos = torch.dot(_histogram(textured), _histogram(textured * 0.6)).item()
    marginal_cos = torch.dot(
        _histogram(textured, marginal), _histogram(textured * 0.6, marginal)
    ).item()
    assert joint_cos < marginal_cos


def test_hue_wraps_around() -> None:
    assert torch.dot(_histogram(_solid(359.0)), _histogram(_solid(1.0))).item() > 0.99
    assert torch.dot(_histogram(_solid(0.0)), _histogram(_solid(180.0))).item() < 0.05
    hard = HsvHistogramConfig(soft=False)
    assert torch.dot(
        _histogram(_solid(359.0), hard), _histogram(_solid(1.0), hard)
    ).item() == pytest.approx(1.0)


def test_grey_pixels_ignore_hue() -> None:
    # grey and nearly grey patches whose (meaningless) hues are opposite: mostly the grey bin
    assert torch.dot(
        _histogram(_solid(0.0, 0.0)), _histogram(_solid(180.0, 0.0))
    ).item() == pytest.approx(1.0)
    assert torch.dot(_histogram(_solid(0.0, 0.02)), _histogram(_solid(180.0, 0.02))).item() > 0.95
    config = HsvHistogramConfig(layout="marginal", saturation_bins=1, value_bins=1)
    grey = _histogram(_solid(90.0, 0.0), config)
    assert grey[: config.hue_bins].abs().max().item() == 0.0  # no chromatic hue mass
    assert grey[config.hue_bins].item() == pytest.approx(grey[-1].item())  # grey bin = value mass


def test_soft_bins_are_continuous() -> None:
    one = _histogram(_solid(100.0, value=0.50))
    near = _histogram(_solid(100.5, value=0.505))
    assert torch.dot(one, near).item() > 0.99


def test_bad_config_and_inputs() -> None:
    with pytest.raises(ValueError, match="layout"):
        HsvHistogramConfig(layout="cube")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins"):
        HsvHistogramConfig(hue_bins=0)
    with pytest.raises(ValueError, match="smaller than"):
        hsv_patch_histograms(torch.zeros(1, 3, 2, 2), (4, 4))

"""RAIN and the norm factory."""

from __future__ import annotations

import pytest
import torch

from raiha.models.layers.norms import RegionAwareInstanceNorm, make_norm, masked_mean_std


def _half_mask(batch: int = 2, size: int = 8) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, :, : size // 2] = 1  # left half is foreground
    return mask


def test_masked_mean_std_known_answer() -> None:
    features = torch.tensor([[[[1.0, 3.0], [10.0, 10.0]]]])  # [1, 1, 2, 2]
    region = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    mean, std = masked_mean_std(features, region, eps=0.0)
    assert mean.item() == pytest.approx(2.0)
    assert std.item() == pytest.approx(1.0)  # values 1 and 3 around 2


def test_rain_gives_foreground_the_background_statistics() -> None:
    torch.manual_seed(0)
    mask = _half_mask()
    features = torch.randn(2, 3, 8, 8)
    features = features + 5 * mask  # the foreground is much brighter
    features = features * (1 + mask)
    output = RegionAwareInstanceNorm(3)(features, mask)
    fg_in_mean, fg_in_std = masked_mean_std(features, 1 - mask)
    fg_out_mean, fg_out_std = masked_mean_std(output, mask)
    torch.testing.assert_close(fg_out_mean, fg_in_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fg_out_std, fg_in_std, atol=1e-3, rtol=1e-3)
    bg_out_mean, bg_out_std = masked_mean_std(output, 1 - mask)
    torch.testing.assert_close(bg_out_mean, torch.zeros_like(bg_out_mean), atol=1e-4, rtol=0)
    torch.testing.assert_close(bg_out_std, torch.ones_like(bg_out_std), atol=1e-3, rtol=0)


def test_rain_resizes_the_mask_to_the_features() -> None:
    norm = RegionAwareInstanceNorm(4)
    output = norm(torch.randn(1, 4, 4, 4), _half_mask(1, 16))
    assert output.shape == (1, 4, 4, 4)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("kind", ["rain", "instance", "batch", "none"])
def test_every_norm_takes_features_and_mask(kind: str) -> None:
    norm = make_norm(kind, 5)
    features = torch.randn(2, 5, 6, 6)
    assert norm(features, _half_mask(2, 6)).shape == features.shape


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_rain_equals_the_authors_formulation(seed: int) -> None:
    torch.manual_seed(seed)
    fused, verbatim = RegionAwareInstanceNorm(6), RegionAwareInstanceNorm(6, fused=False)
    for parameter in fused.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    verbatim.load_state_dict(fused.state_dict())
    features = torch.randn(3, 6, 16, 16) * 3 + 1
    mask = (torch.rand(3, 1, 32, 32) > 0.6).float()
    mask[2] = 0  # an image without foreground: the fg statistics are zero, as in the authors' code
    torch.testing.assert_close(fused(features, mask), verbatim(features, mask), atol=2e-5, rtol=1e-5)
    features.requires_grad_(True)
    fused(features, mask).sum().backward()
    assert torch.isfinite(features.grad).all()


def test_fused_rain_runs_under_bf16_autocast_and_keeps_the_features_dtype() -> None:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 8, 16, 16, generator=generator)
    mask = (torch.rand(2, 1, 16, 16, generator=generator) > 0.6).float()
    norm = RegionAwareInstanceNorm(8)
    reference = norm(features, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        halved = norm(features.bfloat16(), mask)
    assert halved.dtype == torch.bfloat16
    assert torch.allclose(halved.float(), reference, atol=0.1, rtol=0.05)

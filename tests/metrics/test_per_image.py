"""Known answers for per-image MSE / PSNR / fMSE under the paper and iS2AM protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raiha.metrics.per_image import per_image_scores, to_uint8_levels


def levels_to_unit(levels: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(x + 1) / 2 * 255``: level values (may be fractional) to [-1, 1] float32."""
    return (levels.double() / 255.0 * 2.0 - 1.0).float()


def two_by_two_pair(
    base_level: float, changed_level: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2x2 RGB images equal at ``base_level``; pred channel 0 of pixel (0, 0) is ``changed_level``."""
    target_levels = torch.full((1, 3, 2, 2), base_level)
    pred_levels = target_levels.clone()
    pred_levels[0, 0, 0, 0] = changed_level
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 1.0
    return levels_to_unit(pred_levels), levels_to_unit(target_levels), mask


def test_paper_one_pixel_ten_levels() -> None:
    # +0.25 keeps truncation and rounding on the same integer level
    pred, target, mask = two_by_two_pair(100.25, 110.25)
    scores = per_image_scores(pred, target, mask, protocol="paper")
    assert scores["mse"].dtype == torch.float64 and scores["mse"].shape == (1,)
    assert scores["mse"].item() == pytest.approx(100 / 12)  # 10^2 over 2*2*3 values
    assert scores["psnr"].item() == pytest.approx(10 * math.log10(255**2 / (100 / 12)))
    assert scores["fmse"].item() == pytest.approx(100 / 3)  # one fg pixel, 3 channels


def test_paper_fmse_uses_mask_above_half() -> None:
    pred, target, _ = two_by_two_pair(100.25, 110.25)
    mask = torch.tensor([[[[0.51, 0.9], [0.5, 0.0]]]])  # fg = (0,0) and (0,1); 0.5 is bg
    scores = per_image_scores(pred, target, mask)
    assert scores["fmse"].item() == pytest.approx(100 / 6)
    error_outside = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])
    assert per_image_scores(pred, target, error_outside)["fmse"].item() == 0.0


def test_floor_and_round_differ_on_crafted_value() -> None:
    pred, target, mask = two_by_two_pair(100.25, 100.7)
    floor_scores = per_image_scores(pred, target, mask, quantize="floor")
    round_scores = per_image_scores(pred, target, mask, quantize="round")
    assert floor_scores["mse"].item() == 0.0  # 100.7 truncates to 100
    assert round_scores["mse"].item() == pytest.approx(1 / 12)  # 100.7 rounds to 101
    assert round_scores["fmse"].item() == pytest.approx(1 / 3)


def test_uint8_conversion_matches_authors_numpy_tensor2im() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16, generator=generator) * 2.4 - 1.2  # some out of range
    ours = to_uint8_levels(images, "floor")
    for image, our_levels in zip(images, ours, strict=True):
        image_numpy = image.cpu().float().numpy()
        reference = np.clip((np.transpose(image_numpy, (1, 2, 0)) + 1) / 2.0 * 255.0, 0, 255)
        reference = reference.astype(np.uint8)  # what the authors' tensor2im returns
        np.testing.assert_array_equal(our_levels.permute(1, 2, 0).numpy(), reference)


def test_paper_identical_images_give_finite_large_psnr() -> None:
    target = torch.rand(2, 3, 4, 4) * 2 - 1
    scores = per_image_scores(target.clone(), target, torch.ones(2, 1, 4, 4))
    assert torch.all(scores["mse"] == 0)
    assert torch.allclose(
        scores["psnr"], torch.full((2,), 10 * math.log10(255**2 / 1e-10)).double()
    )


def test_paper_empty_mask_gives_nan_fmse() -> None:
    pred, target, _ = two_by_two_pair(100.25, 110.25)
    scores = per_image_scores(pred, target, torch.zeros(1, 1, 2, 2))
    assert math.isnan(scores["fmse"].item())
    assert scores["mse"].item() == pytest.approx(100 / 12)


def test_paper_clips_out_of_range_values() -> None:
    target = torch.ones(1, 3, 2, 2)  # level 255
    pred = torch.full((1, 3, 2, 2), 1.7)  # clipped to 255
    assert per_image_scores(pred, target, torch.ones(1, 1, 2, 2))["mse"].item() == 0.0


def test_is2am_psnr_uses_target_max_and_no_quantization() -> None:
    target_levels = torch.full((1, 3, 2, 2), 51.0)
    target_levels[0, 2, 1, 1] = 204.0  # the target's peak
    pred_levels = target_levels.clone()
    pred_levels[0, 0, 0, 0] = 61.0  # 10 levels off
    pred, target = levels_to_unit(pred_levels), levels_to_unit(target_levels)
    mask = torch.ones(1, 1, 2, 2)
    scores = per_image_scores(pred, target, mask, protocol="is2am")
    mse = 100 / 12
    assert scores["mse"].item() == pytest.approx(mse, rel=1e-5)
    assert scores["psnr"].item() == pytest.approx(10 * math.log10(204**2 / (mse + 1e-6)), rel=1e-6)
    paper_psnr = per_image_scores(pred, target, mask, protocol="paper")["psnr"].item()
    assert paper_psnr == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-6)


def test_is2am_keeps_sub_level_errors() -> None:
    pred, target, mask = two_by_two_pair(100.25, 100.55)  # 0.3 levels apart
    is2am_mse = per_image_scores(pred, target, mask, protocol="is2am")["mse"].item()
    assert is2am_mse == pytest.approx(0.09 / 12, rel=1e-3)
    assert per_image_scores(pred, target, mask, protocol="paper")["mse"].item() == 0.0


def test_is2am_fmse_uses_soft_mask() -> None:
    pred, target, _ = two_by_two_pair(100.0, 110.0)
    soft_mask = torch.tensor([[[[0.5, 0.25], [0.25, 0.25]]]])
    fmse = per_image_scores(pred, target, soft_mask, protocol="is2am")["fmse"].item()
    # sum(mask * err) = 0.5 * 100; 3 * sum(mask) = 3 * 1.25
    assert fmse == pytest.approx(50 / (3.75 + 1e-6), rel=1e-5)


def test_batch_scores_are_per_image() -> None:
    pred_a, target_a, mask_a = two_by_two_pair(100.25, 110.25)
    pred_b, target_b, mask_b = two_by_two_pair(100.25, 120.25)
    scores = per_image_scores(
        torch.cat([pred_a, pred_b]), torch.cat([target_a, target_b]), torch.cat([mask_a, mask_b])
    )
    assert scores["mse"].tolist() == pytest.approx([100 / 12, 400 / 12])
    assert scores["fmse"].tolist() == pytest.approx([100 / 3, 400 / 3])


def test_unknown_names_and_bad_shapes_raise() -> None:
    pred, target, mask = two_by_two_pair(100.25, 110.25)
    with pytest.raises(ValueError, match=r"\['paper', 'is2am', 'pctnet', 'harmonizer'\]"):
        per_image_scores(pred, target, mask, protocol="hdnet")
    with pytest.raises(ValueError, match=r"\['floor', 'round'\]"):
        per_image_scores(pred, target, mask, quantize="ceil")
    with pytest.raises(ValueError, match="same shape"):
        per_image_scores(pred, target[..., :1], mask)
    with pytest.raises(ValueError, match="mask is"):
        per_image_scores(pred, target, mask[:, :, :1])

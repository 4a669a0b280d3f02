"""Known answers for the foreground-normalised MSE (paper Eq. 11)."""

from __future__ import annotations

import pytest
import torch

from raiha.training.loss import ForegroundNormalizedMSE, foreground_normalized_mse


def _one_pixel_error_pair(size: int, error: float) -> tuple[torch.Tensor, torch.Tensor]:
    """pred = 0 everywhere; target differs by ``error`` at pixel (0, 0) in all 3 channels."""
    pred = torch.zeros(1, 3, size, size)
    target = torch.zeros(1, 3, size, size)
    target[0, :, 0, 0] = error
    return pred, target


def test_full_mask_known_answer() -> None:
    pred, target = _one_pixel_error_pair(size=10, error=1.0)
    mask = torch.ones(1, 1, 10, 10)  # area 100
    # sum of squared error = 3 (3 channels x 1^2); 3 / (3 * 100)
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(0.01)


def test_area_above_min_area_divides_by_area() -> None:
    pred, target = _one_pixel_error_pair(size=20, error=0.5)
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., :10, :20] = 1.0  # area 200 > 100
    # sum = 3 * 0.25 = 0.75; 0.75 / (3 * 200)
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(0.75 / 600)


def test_small_mask_is_clamped_to_min_area() -> None:
    pred, target = _one_pixel_error_pair(size=10, error=1.0)
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., :2, :2] = 1.0  # area 4
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(3 / 300)
    assert foreground_normalized_mse(pred, target, mask, min_area=1.0).item() == pytest.approx(
        3 / 12
    )
    assert foreground_normalized_mse(pred, target, mask, min_area=8.0).item() == pytest.approx(
        3 / 24
    )


def test_soft_mask_counts_fractional_area() -> None:
    pred, target = _one_pixel_error_pair(size=20, error=1.0)
    mask = torch.full((1, 1, 20, 20), 0.5)  # area 200
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(3 / 600)


def test_batch_mean_of_per_image_losses() -> None:
    pred = torch.zeros(2, 3, 10, 10)
    target = torch.zeros(2, 3, 10, 10)
    target[0, :, 0, 0] = 1.0  # image 0: sum 3, area 100 -> 0.01
    target[1] = 0.5  # image 1: sum 300 * 0.25 = 75, area clamped 100 -> 0.25
    mask = torch.ones(2, 1, 10, 10)
    mask[1] = 0.0
    mask[1, :, 0, :5] = 1.0  # area 5, clamped to 100
    expected = (0.01 + 75 / 300) / 2
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(expected)


def test_error_outside_mask_still_counts_in_numerator() -> None:
    """Eq. 11 sums the error over the whole image; only the denominator uses the mask."""
    pred, target = _one_pixel_error_pair(size=20, error=1.0)
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 10:, :] = 1.0  # error pixel (0, 0) lies outside; area 200
    assert foreground_normalized_mse(pred, target, mask).item() == pytest.approx(3 / 600)


def test_module_matches_function_and_has_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 8, 8, generator=generator).mul(2).sub(1).requires_grad_()
    target = torch.rand(2, 3, 8, 8, generator=generator).mul(2).sub(1)
    mask = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()
    loss_module = ForegroundNormalizedMSE(min_area=10.0)
    loss = loss_module(pred, target, mask)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(foreground_normalized_mse(pred, target, mask, 10.0).item())
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert "min_area=10.0" in repr(loss_module)


def test_zero_when_prediction_is_exact() -> None:
    target = torch.rand(3, 3, 6, 6)
    assert foreground_normalized_mse(target.clone(), target, torch.ones(3, 1, 6, 6)).item() == 0.0


def test_bad_shapes_and_min_area_raise() -> None:
    pred = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="differ in shape"):
        foreground_normalized_mse(pred, torch.zeros(1, 3, 8, 9), torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask is"):
        foreground_normalized_mse(pred, pred, torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="min_area"):
        ForegroundNormalizedMSE(min_area=0.0)

"""Foreground-normalised MSE (paper Eq. 11): the training loss of the harmonizer."""

from __future__ import annotations

from torch import Tensor, nn

from raiha.metrics.shapes import check_image_batch


def foreground_normalized_mse(
    pred: Tensor, target: Tensor, mask: Tensor, min_area: float = 100.0
) -> Tensor:
    """Per image ``sum((pred - target)^2) / (C * max(sum(mask), min_area))``, averaged over the batch.

    Args:
        pred: harmonized images ``[B, C, H, W]`` in [-1, 1].
        target: real images ``[B, C, H, W]`` in [-1, 1].
        mask: foreground masks ``[B, 1, H, W]`` in [0, 1] (soft masks count fractionally).
        min_area: lower bound on the foreground area in pixels (epsilon_f of Eq. 11), so
            tiny foregrounds do not blow the loss up.

    Returns:
        A scalar tensor.
    """
    check_image_batch(pred, target, mask)
    channels = pred.shape[1]
    squared_error_sum = (pred - target).pow(2).sum(dim=(1, 2, 3))  # [B]
    fg_area = mask.sum(dim=(1, 2, 3)).clamp(min=min_area)  # [B]
    per_image = squared_error_sum / (channels * fg_area)  # [B]
    return per_image.mean()


class ForegroundNormalizedMSE(nn.Module):
    """Module form of :func:`foreground_normalized_mse` for Hydra instantiation."""

    def __init__(self, min_area: float = 100.0) -> None:
        super().__init__()
        if min_area <= 0:
            raise ValueError(f"min_area must be positive (pixels), got {min_area}")
        self.min_area = float(min_area)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Return the scalar loss; see :func:`foreground_normalized_mse`."""
        return foreground_normalized_mse(pred, target, mask, min_area=self.min_area)

    def extra_repr(self) -> str:
        return f"min_area={self.min_area}"


__all__ = ["ForegroundNormalizedMSE", "foreground_normalized_mse"]

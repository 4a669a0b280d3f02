"""The one shape check of an image batch, shared by the scores and the training loss."""

from __future__ import annotations

from torch import Tensor


def check_image_batch(pred: Tensor, target: Tensor, mask: Tensor) -> None:
    """Raise a ValueError naming the mismatch: pred and target ``[B, C, H, W]`` of one shape,
    mask ``[B, 1, H, W]``."""
    if pred.dim() != 4:
        raise ValueError(f"pred must be [B, C, H, W], got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape; "
            "pass the prediction and the real image with the same shape"
        )
    batch, _, height, width = pred.shape
    if mask.shape != (batch, 1, height, width):
        raise ValueError(
            f"mask is {tuple(mask.shape)} but must be {(batch, 1, height, width)} to match pred; "
            "pass a single-channel mask at the image size"
        )

"""Per-image MSE, PSNR and fMSE under the two evaluation protocols of the field.

``paper`` (HDNet / Raiha, the default): both images are converted to uint8 the way the
authors' ``tensor2im`` does (``(x + 1) / 2 * 255``, clip to [0, 255], then truncate),
MSE is the mean over H, W, C of the squared uint8 difference, PSNR uses data range 255,
and fMSE sums the squared error over the pixels where ``mask > 0.5`` and all channels,
divided by ``3 * fg pixel count``.

``is2am`` (iS2AM / iDIH): float images in [0, 255] (no quantization; clipped to
[0, 255] like iS2AM's predictor does), PSNR peak = the target's max value per image and
``+1e-6`` on the MSE, fMSE with the soft mask: ``sum(mask * err) / (3 * sum(mask) + 1e-6)``.

Edge cases (decisions):
- ``paper`` PSNR clamps the MSE at :data:`PAPER_MIN_MSE` (1e-10), so identical images give
  a finite PSNR of about 148.1 dB instead of skimage's ``inf`` (an ``inf`` would make
  every mean over images ``inf``).
- ``paper`` fMSE of an image whose mask has no pixel above 0.5 is NaN (the datasets
  reject empty masks before this point; the aggregating metric leaves NaN out of the fMSE
  mean only).
"""

from __future__ import annotations

import torch
from torch import Tensor

PROTOCOLS: tuple[str, ...] = ("paper", "is2am")
QUANTIZE_MODES: tuple[str, ...] = ("floor", "round")
PAPER_DATA_RANGE = 255.0
PAPER_MIN_MSE = 1e-10
IS2AM_EPS = 1e-6


def check_protocol(protocol: str, quantize: str = "floor") -> None:
    """Raise a ValueError listing the valid names when ``protocol`` or ``quantize`` is unknown."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown evaluation protocol {protocol!r}; choose one of {list(PROTOCOLS)}"
        )
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"unknown quantize mode {quantize!r}; choose one of {list(QUANTIZE_MODES)}"
        )


def to_uint8_levels(images: Tensor, quantize: str = "floor") -> Tensor:
    """Map [-1, 1] images to integer levels 0..255 (float64), like the authors' ``tensor2im``.

    Args:
        images: any shape, values in [-1, 1] (values outside are clipped).
        quantize: "floor" truncates like numpy ``astype(uint8)`` (the authors' code);
            "round" rounds half to even like ``np.round``.
    """
    check_protocol("paper", quantize)
    # float32 arithmetic in the authors' order, so truncation matches numpy bit for bit
    levels = ((images.float() + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0)
    integer_levels = torch.floor(levels) if quantize == "floor" else torch.round(levels)
    return integer_levels.double()


def to_float_255(images: Tensor) -> Tensor:
    """Map [-1, 1] images to float64 values in [0, 255] without quantization (iS2AM protocol)."""
    return ((images.double() + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0)


def _check_inputs(pred: Tensor, target: Tensor, mask: Tensor) -> None:
    """Raise a ValueError naming the bad shape; pred/target ``[B, C, H, W]``, mask ``[B, 1, H, W]``."""
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [B, C, H, W] "
            "with the same shape"
        )
    batch, _, height, width = pred.shape
    if mask.shape != (batch, 1, height, width):
        raise ValueError(
            f"mask is {tuple(mask.shape)} but must be {(batch, 1, height, width)}; "
            "pass a single-channel mask at the image size"
        )


def _paper_scores(pred: Tensor, target: Tensor, mask: Tensor, quantize: str) -> dict[str, Tensor]:
    pred_levels = to_uint8_levels(pred, quantize)  # [B, C, H, W]
    target_levels = to_uint8_levels(target, quantize)  # [B, C, H, W]
    squared_error = (pred_levels - target_levels).pow(2)  # [B, C, H, W]
    channels = squared_error.shape[1]
    mse = squared_error.mean(dim=(1, 2, 3))  # [B]
    psnr = 10.0 * torch.log10(PAPER_DATA_RANGE**2 / mse.clamp(min=PAPER_MIN_MSE))  # [B]
    fg_pixels = (mask.double() > 0.5).double()  # [B, 1, H, W]
    fg_count = fg_pixels.sum(dim=(1, 2, 3))  # [B]
    fg_error_sum = (squared_error * fg_pixels).sum(dim=(1, 2, 3))  # [B]
    nan = torch.full_like(fg_count, float("nan"))
    fmse = torch.where(fg_count > 0, fg_error_sum / (channels * fg_count.clamp(min=1.0)), nan)
    return {"mse": mse, "psnr": psnr, "fmse": fmse}


def _is2am_scores(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    pred_values = to_float_255(pred)  # [B, C, H, W]
    target_values = to_float_255(target)  # [B, C, H, W]
    squared_error = (pred_values - target_values).pow(2)  # [B, C, H, W]
    channels = squared_error.shape[1]
    mse = squared_error.mean(dim=(1, 2, 3))  # [B]
    peak = target_values.flatten(start_dim=1).amax(dim=1)  # [B]
    psnr = 10.0 * torch.log10(peak.pow(2) / (mse + IS2AM_EPS))  # [B]
    soft_mask = mask.double()  # [B, 1, H, W]
    fg_error_sum = (squared_error * soft_mask).sum(dim=(1, 2, 3))  # [B]
    fmse = fg_error_sum / (channels * soft_mask.sum(dim=(1, 2, 3)) + IS2AM_EPS)  # [B]
    return {"mse": mse, "psnr": psnr, "fmse": fmse}


@torch.no_grad()
def per_image_scores(
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    protocol: str = "paper",
    quantize: str = "floor",
) -> dict[str, Tensor]:
    """Per-image scores of a batch.

    Args:
        pred: output already pasted on the composite, ``[B, 3, H, W]`` in [-1, 1].
        target: real images ``[B, 3, H, W]`` in [-1, 1].
        mask: foreground masks ``[B, 1, H, W]`` in [0, 1].
        protocol: "paper" (uint8, HDNet/Raiha) or "is2am" (float, iS2AM/iDIH).
        quantize: "floor" or "round"; used by the paper protocol only.

    Returns:
        ``{"mse": [B], "psnr": [B], "fmse": [B]}``, float64 tensors on the input device.
    """
    check_protocol(protocol, quantize)
    _check_inputs(pred, target, mask)
    if protocol == "paper":
        return _paper_scores(pred, target, mask, quantize)
    return _is2am_scores(pred, target, mask)


__all__ = [
    "PROTOCOLS",
    "QUANTIZE_MODES",
    "check_protocol",
    "per_image_scores",
    "to_float_255",
    "to_uint8_levels",
]

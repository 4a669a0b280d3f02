"""Per-image MSE, PSNR, fMSE and foreground ratio under a named scoring protocol.

The protocols (``paper``, ``is2am``, ``pctnet``, ``harmonizer``) are described in
:mod:`raiha.metrics.protocols`. Scoring runs in two steps: model outputs in [-1, 1] are
turned into pixel levels in [0, 255] by the protocol's quantisation
(:func:`to_levels`), then :func:`score_levels` scores levels against levels. Images
read from files (``raiha.score``, full-resolution evaluation) are levels already.

:func:`score_levels` walks the rows in blocks and keeps only sums, maxima and minima, so a
6048 x 4032 HAdobe5k image is scored without float64 copies of the whole image.

Edge cases (decisions):
- ``min_mse`` (paper, harmonizer: 1e-10) floors the MSE inside the PSNR, so identical
  images give a finite PSNR of about 148.1 dB instead of skimage's ``inf``.
- ``hard`` and ``scaled`` fMSE of an image without foreground is NaN (the datasets
  reject empty masks before this point; aggregates leave NaN out of the fMSE mean).
"""

from __future__ import annotations

import torch
from torch import Tensor

from raiha.metrics.protocols import PROTOCOLS, QUANTISATIONS, ScoringProtocol, get_protocol
from raiha.metrics.shapes import check_image_batch

QUANTIZE_MODES: tuple[str, ...] = ("floor", "round")
SCORE_KEYS: tuple[str, ...] = ("mse", "psnr", "fmse", "fg_ratio")
PAPER_DATA_RANGE = 255.0
PAPER_MIN_MSE = 1e-10
IS2AM_EPS = 1e-6
BLOCK_ROWS = 512


def check_protocol(protocol: str | ScoringProtocol, quantize: str | None = "floor") -> ScoringProtocol:
    """The protocol (with ``quantize`` applied when it quantises); ValueErrors list the valid names."""
    resolved = get_protocol(protocol)
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r}; choose one of {list(QUANTIZE_MODES)}")
    if quantize is not None and resolved.quantisation != "float":
        resolved = resolved.with_quantisation(quantize)
    return resolved


def to_uint8_levels(images: Tensor, quantize: str = "floor") -> Tensor:
    """Map [-1, 1] images to integer levels 0..255 (float64), like the authors' ``tensor2im``.

    Args:
        images: any shape, values in [-1, 1] (values outside are clipped).
        quantize: "floor" truncates like numpy ``astype(uint8)`` (the authors' code);
            "round" rounds half to even like ``np.round``.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r}; choose one of {list(QUANTIZE_MODES)}")
    # float32 arithmetic in the authors' order, so truncation matches numpy bit for bit
    levels = ((images.float() + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0)
    integer_levels = torch.floor(levels) if quantize == "floor" else torch.round(levels)
    return integer_levels.double()


def to_float_255(images: Tensor) -> Tensor:
    """Map [-1, 1] images to float64 values in [0, 255] without quantization."""
    return ((images.double() + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0)


def to_levels(images: Tensor, quantisation: str) -> Tensor:
    """[-1, 1] images -> float64 levels in [0, 255] by ``quantisation`` (floor | round | float)."""
    if quantisation not in QUANTISATIONS:
        raise ValueError(f"unknown quantisation {quantisation!r}; choose one of {list(QUANTISATIONS)}")
    return to_float_255(images) if quantisation == "float" else to_uint8_levels(images, quantisation)


def _block_sums(pred: Tensor, target: Tensor, mask: Tensor, protocol: ScoringProtocol) -> dict[str, Tensor]:
    """Additive statistics of one row block; inputs ``[B, C, h, W]`` levels, mask ``[B, 1, h, W]``."""
    pred, target, soft = pred.double(), target.double(), mask.double().clamp(0.0, 1.0)
    squared_error = (pred - target).pow(2)  # [B, C, h, W]
    hard = (soft > 0.5).double()  # [B, 1, h, W]
    weight = {"hard": hard, "soft": soft, "scaled": soft.pow(2)}[protocol.fmse]
    dims = (1, 2, 3)
    return {
        "squared": squared_error.sum(dim=dims),  # [B]
        "masked_squared": (squared_error * soft).sum(dim=dims),  # [B]
        "fg_squared": (squared_error * weight).sum(dim=dims),  # [B]
        "soft_area": soft.sum(dim=dims),  # [B]
        "hard_area": hard.sum(dim=dims),  # [B]
        "target_max": target.flatten(1).amax(dim=1),  # [B]
        "pred_max": pred.flatten(1).amax(dim=1),  # [B]
        "pred_min": pred.flatten(1).amin(dim=1),  # [B]
    }


def _merge(total: dict[str, Tensor] | None, block: dict[str, Tensor]) -> dict[str, Tensor]:
    if total is None:
        return block
    merged = {key: total[key] + block[key] for key in block if key not in ("target_max", "pred_max", "pred_min")}
    merged["target_max"] = torch.maximum(total["target_max"], block["target_max"])
    merged["pred_max"] = torch.maximum(total["pred_max"], block["pred_max"])
    merged["pred_min"] = torch.minimum(total["pred_min"], block["pred_min"])
    return merged


def _finish(sums: dict[str, Tensor], protocol: ScoringProtocol, channels: int, pixels: int) -> dict[str, Tensor]:
    """Per-image scores ``[B]`` from the summed statistics."""
    values = channels * pixels
    mse = (sums["masked_squared"] if protocol.mse == "masked" else sums["squared"]) / values  # [B]
    peak = {
        "255": torch.full_like(mse, PAPER_DATA_RANGE),
        "target_max": sums["target_max"],
        "prediction_range": sums["pred_max"] - sums["pred_min"],
    }[protocol.psnr_peak]
    psnr = 10.0 * torch.log10(peak.pow(2) / (mse + protocol.mse_epsilon).clamp(min=protocol.min_mse))  # [B]
    nan = torch.full_like(mse, float("nan"))
    if protocol.fmse == "soft":
        fmse = sums["fg_squared"] / (channels * sums["soft_area"] + protocol.fmse_epsilon)
    else:
        area = sums["hard_area"] if protocol.fmse == "hard" else torch.floor(sums["soft_area"])
        fmse = torch.where(area > 0, sums["fg_squared"] / (channels * area.clamp(min=1.0)), nan)
    return {"mse": mse, "psnr": psnr, "fmse": fmse, "fg_ratio": sums["hard_area"] / pixels}


@torch.no_grad()
def score_levels(
    pred: Tensor, target: Tensor, mask: Tensor, protocol: str | ScoringProtocol, *, block_rows: int = BLOCK_ROWS
) -> dict[str, Tensor]:
    """Per-image scores of pixel levels.

    Args:
        pred, target: ``[B, C, H, W]`` levels in [0, 255] (uint8 or float; float values are
            clipped to [0, 255]); no quantisation is applied here.
        mask: ``[B, 1, H, W]`` in [0, 1] (soft or binary).
        protocol: a name of :data:`PROTOCOLS` or a :class:`ScoringProtocol`.
        block_rows: rows scored at a time (bounds the memory on huge images).

    Returns:
        ``{"mse", "psnr", "fmse", "fg_ratio"}``, each a float64 ``[B]`` tensor.
    """
    protocol = get_protocol(protocol)
    check_image_batch(pred, target, mask)
    channels, height, width = pred.shape[1:]
    sums: dict[str, Tensor] | None = None
    for top in range(0, height, block_rows):
        rows = slice(top, min(top + block_rows, height))
        block_pred = pred[:, :, rows].double().clamp(0.0, 255.0)
        block_target = target[:, :, rows].double().clamp(0.0, 255.0)
        sums = _merge(sums, _block_sums(block_pred, block_target, mask[:, :, rows], protocol))
    assert sums is not None
    return _finish(sums, protocol, channels, height * width)


@torch.no_grad()
def per_image_scores(
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    protocol: str | ScoringProtocol = "paper",
    quantize: str | None = "floor",
) -> dict[str, Tensor]:
    """Per-image scores of a batch of model outputs.

    Args:
        pred: output already pasted on the composite, ``[B, 3, H, W]`` in [-1, 1].
        target: real images ``[B, 3, H, W]`` in [-1, 1].
        mask: foreground masks ``[B, 1, H, W]`` in [0, 1].
        protocol: a protocol name (see :mod:`raiha.metrics.protocols`) or object.
        quantize: "floor" or "round" overrides a quantising protocol's rounding; ignored by
            float protocols; None keeps the protocol's own.

    Returns:
        ``{"mse": [B], "psnr": [B], "fmse": [B], "fg_ratio": [B]}``, float64 on the input device.
    """
    resolved = check_protocol(protocol, quantize)
    check_image_batch(pred, target, mask)
    pred_levels = to_levels(pred, resolved.quantisation)  # [B, C, H, W]
    target_levels = to_levels(target, resolved.quantisation)  # [B, C, H, W]
    return score_levels(pred_levels, target_levels, mask, resolved)


__all__ = [
    "PROTOCOLS",
    "QUANTIZE_MODES",
    "SCORE_KEYS",
    "check_protocol",
    "per_image_scores",
    "score_levels",
    "to_float_255",
    "to_levels",
    "to_uint8_levels",
]

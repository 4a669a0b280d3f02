"""Carry a prediction made at the model size back to the composite's full resolution (used by
``raiha.Harmonizer`` and by full-resolution evaluation).

The network sees an ``S x S`` copy; users want their ``H x W`` photo. Upsampling the
output would blur the whole object. Instead the *change* the network made to the
foreground is transferred:

- ``affine`` (default): the colour transform ``y = [x, 1] A`` (``A``: 4 x 3) that best maps
  the composite's foreground pixels to the output's at the model size (least squares; its
  linear part gently pulled towards the identity) is applied to every full-resolution
  foreground pixel. Harmonization is mostly such a global colour and brightness change,
  and the object's full-resolution detail is kept.
- ``residual``: the per-pixel difference output - composite at the model size is
  upsampled (bilinear) and added; keeps spatially varying changes, blurs them.

Either way the result is blended with the soft mask ``alpha``: ``comp + alpha * (new -
comp)``. Pixels with ``alpha == 0`` are copied, bit-identical, from the input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

METHODS = ("affine", "residual")


def fit_colour_transform(source: Tensor, target: Tensor, ridge: float = 1e-4) -> Tensor:
    """``A`` ``[4, 3]`` with ``[source, 1] A ~ target`` (least squares on ``[n, 3]`` pixels in [0, 1]).

    The mean shift is fitted exactly; the 3 x 3 linear part is pulled towards the identity
    by ``ridge * n`` (a variance of 1e-4 is a 1 % spread): a flat foreground, whose linear
    part the data cannot tell, keeps its texture instead of being flattened or amplified.
    """
    count = source.shape[0]
    source, target = source.double(), target.double()
    source_mean, target_mean = source.mean(dim=0), target.mean(dim=0)  # [3]
    centred_source, centred_target = source - source_mean, target - target_mean
    weight = ridge * max(count, 1)
    identity = torch.eye(3, dtype=torch.float64)
    gram = centred_source.T @ centred_source + weight * identity  # [3, 3]
    linear = torch.linalg.solve(gram, centred_source.T @ centred_target + weight * identity)  # [3, 3]
    offset = target_mean - source_mean @ linear  # [3]
    return torch.cat([linear, offset[None]], dim=0).float()  # [4, 3]


def transfer_to_full_resolution(
    composite: np.ndarray,
    alpha: np.ndarray,
    composite_small: Tensor,
    output_small: Tensor,
    mask_small: Tensor,
    method: str = "affine",
) -> np.ndarray:
    """The harmonized photo at full resolution, uint8 ``[H, W, 3]``.

    Args:
        composite: uint8 ``[H, W, 3]``; alpha: float32 ``[H, W]`` in [0, 1].
        composite_small, output_small: ``[3, S, S]`` in [-1, 1]; mask_small: ``[1, S, S]``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")
    result = composite.copy()
    inside = alpha > 0  # [H, W]
    if not inside.any():
        return result
    pixels = composite[inside].astype(np.float32) / 255.0  # [n, 3]
    if method == "affine":
        fg = mask_small[0] > 0.5  # [S, S]
        source = ((composite_small + 1) / 2).permute(1, 2, 0)[fg]  # [m, 3]
        target = ((output_small + 1) / 2).permute(1, 2, 0)[fg]
        transform = fit_colour_transform(source, target).numpy()  # [4, 3]
        changed = np.concatenate([pixels, np.ones((len(pixels), 1), np.float32)], axis=1) @ transform
    else:
        height, width = alpha.shape
        residual = ((output_small - composite_small) / 2)[None].float()  # [1, 3, S, S] in [0, 1] units
        upsampled = F.interpolate(residual, size=(height, width), mode="bilinear", align_corners=False)
        changed = pixels + upsampled[0].permute(1, 2, 0).numpy()[inside]
    weight = alpha[inside][:, None]  # [n, 1]
    blended = np.clip(pixels + weight * (changed - pixels), 0.0, 1.0)
    result[inside] = np.rint(blended * 255.0).astype(np.uint8)
    return result

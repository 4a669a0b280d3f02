"""Composites and masks for inference: any size, any common format, checked with clear errors.

Accepted: a path (JPEG, PNG incl. RGBA / palette / 16-bit, grey), a PIL image or a uint8
array ``[H, W, 3]`` / ``[H, W]``. Masks may be grey or 3-channel and may have soft edges:
they are read as alpha in [0, 1] (max over channels / 255). The mask rule is the one of
training (``raiha.io.image_io``): a pixel is foreground when its value is > 127. The network
sees that foreground resized to the model size (bilinear, then >= 0.5, as in training);
``mask_mode`` says how the full-resolution result is blended: ``binary`` (default) by the
rule, so every pixel the rule calls background stays bit-identical, or ``soft`` with the
mask's grey levels. A mask with many grey pixels is reported (logged warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from raiha.io.errors import RaihaDataError
from raiha.io.image_io import (
    MASK_THRESHOLD,
    apply_mask_mode,
    grey_mask_warning,
    load_rgb,
    load_soft_mask,
    resize_mask,
    resize_rgb,
)
from raiha.io.tensors import rgb_to_tensor

log = logging.getLogger(__name__)

ImageInput = str | Path | Image.Image | np.ndarray
FOREGROUND_THRESHOLD = MASK_THRESHOLD / 255.0  # alpha > this: v > 127 for a uint8 mask value v


def _name(source: ImageInput, kind: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"the {kind} array"


def read_rgb(source: ImageInput) -> np.ndarray:
    """uint8 ``[H, W, 3]`` from a path, a PIL image or an array."""
    if isinstance(source, (str, Path)):
        return load_rgb(source)
    array = np.asarray(source.convert("RGB") if isinstance(source, Image.Image) else source)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise RaihaDataError(f"composite array must be uint8 [H, W, 3], got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def read_alpha(source: ImageInput) -> np.ndarray:
    """float32 ``[H, W]`` in [0, 1] from a mask path, PIL image or array (bool, uint8 or float)."""
    if isinstance(source, (str, Path)):
        return load_soft_mask(source)
    array = np.asarray(source.convert("L") if isinstance(source, Image.Image) else source)
    if array.ndim == 3:
        array = array.max(axis=2)
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


@dataclass
class PreparedInput:
    """One composite ready for the network.

    Attributes:
        composite: uint8 ``[H, W, 3]`` at full resolution (returned untouched outside the mask).
        alpha: float32 ``[H, W]`` in [0, 1], the (soft) mask at full resolution.
        composite_small: ``[3, S, S]`` in [-1, 1] at the model size.
        mask_small: ``[1, S, S]`` 0/1 at the model size.
        name: where it came from (for messages and output names).
    """

    composite: np.ndarray
    alpha: np.ndarray
    composite_small: Tensor
    mask_small: Tensor
    name: str


def to_model_tensor(pixels: np.ndarray, size: int) -> Tensor:
    """uint8 ``[H, W, 3]`` -> ``[3, size, size]`` in [-1, 1] (PIL bilinear, like training)."""
    return rgb_to_tensor(resize_rgb(pixels, size))  # [3, size, size]


def prepare_input(composite: ImageInput, mask: ImageInput, size: int, mask_mode: str = "binary") -> PreparedInput:
    """Read and check a composite and its mask; raise ``RaihaDataError`` naming the problem.

    ``mask_mode``: ``binary`` (the mask rule) or ``soft`` (blend with the grey levels).
    """
    name = _name(composite, "composite")
    pixels = read_rgb(composite)
    mask_name = _name(mask, "mask")
    soft_alpha = read_alpha(mask)
    warning = grey_mask_warning(soft_alpha, mask_name, mask_mode)
    if warning:
        log.warning(warning)
    alpha = apply_mask_mode(soft_alpha, mask_mode)
    if alpha.shape != pixels.shape[:2]:
        raise RaihaDataError(
            f"mask {mask_name} is {alpha.shape[1]}x{alpha.shape[0]} but composite {name} is "
            f"{pixels.shape[1]}x{pixels.shape[0]}: they must have the same size"
        )
    foreground = soft_alpha > np.float32(FOREGROUND_THRESHOLD)
    if not foreground.any():
        raise RaihaDataError(f"mask {mask_name} is empty (no pixel > {MASK_THRESHOLD}): nothing to harmonize in {name}")
    if foreground.all():
        raise RaihaDataError(
            f"mask {mask_name} covers the whole image {name}: there is no background to harmonize to"
        )
    small_mask = resize_mask(foreground, size)
    if not small_mask.any():
        raise RaihaDataError(
            f"mask {mask_name} ({int(foreground.sum())} px) touches nothing once {name} is resized to the "
            f"model's {size} x {size}: the object is too small for this model"
        )
    return PreparedInput(
        composite=pixels,
        alpha=alpha,
        composite_small=to_model_tensor(pixels, size),
        mask_small=torch.from_numpy(small_mask.astype(np.float32))[None],
        name=name,
    )

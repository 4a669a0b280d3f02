"""Score one full-size prediction (uint8 arrays, as read from files) at a chosen resolution.

Resolutions (``eval.resolution`` / ``raiha.score resolution=``):

- ``model``: the network's own size (``raiha.eval`` only: the Lightning test at ``data.image_size``);
- ``original``: every image at its own size (PCT-Net, Harmonizer);
- ``max_side=N`` (or ``max_side:N``, which needs no shell quoting): images whose longer
  side exceeds N are shrunk to it, aspect kept (iS2AM caps HAdobe5k at 1024, AICT at 2048);
- ``size=N`` (or ``size:N``): every image resized to N x N (the 256 x 256 protocols).

Resizing is PIL bilinear for images and bilinear on the float mask (soft edges), the way
the data pipeline shrinks to the model size. Background handling (``real_after``) pastes
the real image outside the mask before scoring: ``pred * m + real * (1 - m)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from raiha.metrics.per_image import score_levels, to_levels
from raiha.metrics.protocols import BACKGROUNDS, ScoringProtocol

_RESOLUTION = re.compile(r"^(max_side|size)[=:](\d+)$")


@dataclass(frozen=True)
class Resolution:
    """Where to score: ``kind`` in model | original | max_side | size, ``value`` N for the last two."""

    kind: str
    value: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind in ("model", "original") else f"{self.kind}={self.value}"


def parse_resolution(text: Any) -> Resolution:
    """``"model" | "original" | "max_side=N" | "size=N"`` (``:`` for ``=`` too); ValueError otherwise."""
    spelled = str(text).strip()
    if spelled in ("model", "original"):
        return Resolution(spelled)
    match = _RESOLUTION.match(spelled)
    if match is None or int(match.group(2)) < 1:
        raise ValueError(
            f"unknown resolution {text!r}; use model, original, max_side=N or size=N "
            "(on the command line: max_side:1024 or 'max_side=1024')"
        )
    return Resolution(match.group(1), int(match.group(2)))


def target_size(width: int, height: int, resolution: Resolution) -> tuple[int, int]:
    """(width, height) to score an image of ``width x height`` at."""
    if resolution.kind == "size":
        return resolution.value, resolution.value
    if resolution.kind == "max_side" and max(width, height) > resolution.value:
        scale = resolution.value / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    if resolution.kind == "model":
        raise ValueError("resolution 'model' is the network's size: score files at original, max_side=N or size=N")
    return width, height


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> uint8 ``[h, w, 3]`` (PIL bilinear); unchanged at its own size."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 ``[H, W]`` in [0, 1] -> float32 ``[h, w]`` (bilinear, soft edges kept)."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask.astype(np.float32)
    resized = Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _levels(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # [1, 3, H, W] uint8


def tensor_path_levels(image: np.ndarray, protocol: ScoringProtocol) -> torch.Tensor:
    """Levels ``[1, 3, H, W]`` of a real image or composite as the protocol's codebase sees them.

    Quantising protocols (paper) read images as normalised float32 tensors and truncate them
    back with ``tensor2im``; for 63 of the 256 uint8 levels the float32 round trip lands just
    below the integer and comes back one lower. ``raiha.eval`` scores targets that way, so
    files are scored the same way here. Predictions read from files are taken as they are
    (already quantised by whoever wrote them); float protocols use the exact levels.
    """
    levels = _levels(image)
    if protocol.quantisation == "float":
        return levels
    return to_levels(levels.float() / 127.5 - 1.0, protocol.quantisation)


def _paste_real(prediction: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``pred * m + real * (1 - m)`` on levels ``[1, 3, H, W]`` (float64)."""
    weight = mask.double()
    return prediction.double() * weight + real.double() * (1.0 - weight)


def score_prediction(
    prediction: np.ndarray,
    real: np.ndarray,
    mask: np.ndarray,
    protocol: ScoringProtocol,
    resolution: Resolution,
    *,
    background: str = "composite",
    composite: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores of one image: ``{"fg_ratio", "mse", "psnr", "fmse"}`` plus ``composite_*`` when
    ``composite`` is given (the input = output baseline).

    Args:
        prediction, real, composite: uint8 ``[H, W, 3]`` of one size; mask: float ``[H, W]`` in [0, 1].
        background: ``real_after`` pastes the real background before scoring; ``real_before``
            scores the composite baseline rebuilt as ``comp * (m > 0.5) + real * (m <= 0.5)``
            (the input the method was given); the prediction is scored as given otherwise.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background handling {background!r}; choose one of {list(BACKGROUNDS)}")
    size = target_size(prediction.shape[1], prediction.shape[0], resolution)
    if composite is not None and background == "real_before":  # the composite the method was given
        composite = np.where(mask[:, :, None] > 0.5, composite, real)
    real_levels = tensor_path_levels(resize_image(real, size), protocol)
    mask_tensor = torch.from_numpy(resize_mask(mask, size))[None, None]  # [1, 1, h, w]
    row: dict[str, float] = {}
    candidates = {"": prediction, "composite_": composite}
    for prefix, image in candidates.items():
        if image is None:
            continue
        resized = resize_image(image, size)
        levels = _levels(resized) if not prefix else tensor_path_levels(resized, protocol)
        if background == "real_after":
            levels = _paste_real(levels, real_levels, mask_tensor)
        scores = score_levels(levels, real_levels, mask_tensor, protocol)
        if not prefix:
            row["fg_ratio"] = float(scores["fg_ratio"][0])
        row.update({f"{prefix}{key}": float(scores[key][0]) for key in ("mse", "psnr", "fmse")})
    return row


__all__ = ["Resolution", "parse_resolution", "resize_image", "resize_mask", "score_prediction", "target_size"]

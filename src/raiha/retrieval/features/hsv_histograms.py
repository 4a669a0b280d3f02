"""Appearance features ``a``: a soft HSV histogram of every patch of a grid.

The paper only says "HSV histogram"; the choices here (all in :class:`HsvHistogramConfig`):

- **Joint** histogram by default (hue x saturation x value; 9 x 3 x 4 = 108 bins): a
  relighting moves every pixel to another joint bin, so the histogram cosine drops
  sharply. Concatenated marginals (``layout="marginal"``, 9 + 3 + 4 = 16 dims) hide a
  value-only change behind the unchanged hue and saturation parts.
- **Soft assignment** with a triangular kernel between neighbouring bin centres
  (``soft=False``: nearest bin). Hue centres are ``k * 360 / hue_bins`` degrees and the
  hue kernel wraps around, so 359 and 1 degrees land in the same bins. Saturation and
  value centres are ``k / (bins - 1)`` on ``[0, 1]``.
- **Grey pixels**: hue is meaningless at low saturation. A pixel's hue mass is
  ``min(s / grey_saturation, 1)``; the rest goes to one extra "grey" hue bin (so the
  hue axis has ``hue_bins + 1`` entries). ``grey_saturation=0`` disables the grey bin
  weighting (the bin stays, always empty).
- Pixels are averaged over each grid cell (adaptive pooling, so any image size maps to
  the grid); the output ``[B, h, w, D]`` is L2-normalised per cell, ready for cosine.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_hsv
from torch import Tensor


@dataclass(frozen=True)
class HsvHistogramConfig:
    """Binning of the per-patch HSV histograms (see the module docstring)."""

    hue_bins: int = 8
    saturation_bins: int = 3
    value_bins: int = 4
    grey_saturation: float = 0.15
    layout: Literal["joint", "marginal"] = "joint"
    soft: bool = True

    def __post_init__(self) -> None:
        if self.hue_bins < 1 or self.saturation_bins < 1 or self.value_bins < 1:
            raise ValueError(f"HSV histogram bins must be >= 1, got {self}")
        if self.layout not in ("joint", "marginal"):
            raise ValueError(
                f"HSV histogram layout must be 'joint' or 'marginal', got '{self.layout}'"
            )
        if not 0.0 <= self.grey_saturation <= 1.0:
            raise ValueError(f"grey_saturation must be in [0, 1], got {self.grey_saturation}")

    @property
    def dim(self) -> int:
        """Length D of one patch histogram."""
        hue = self.hue_bins + 1  # + the grey bin
        if self.layout == "joint":
            return hue * self.saturation_bins * self.value_bins
        return hue + self.saturation_bins + self.value_bins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _linear_bin_weights(values: Tensor, bins: int, soft: bool) -> Tensor:
    """Assign ``values`` in ``[0, 1]`` (``[B, H, W]``) to ``bins`` centres ``k/(bins-1)``: ``[B, bins, H, W]``."""
    if bins == 1:
        return torch.ones_like(values)[:, None]  # [B, 1, H, W]
    position = values.clamp(0.0, 1.0) * (bins - 1)  # [B, H, W] in [0, bins-1]
    if not soft:
        return F.one_hot(position.round().long(), bins).permute(0, 3, 1, 2).to(values.dtype)
    lower = position.floor().clamp(max=bins - 2)
    upper_weight = position - lower  # [B, H, W] in [0, 1]
    weights = torch.zeros(
        values.shape[0], bins, *values.shape[1:], dtype=values.dtype, device=values.device
    )
    weights.scatter_add_(1, lower.long()[:, None], (1.0 - upper_weight)[:, None])
    weights.scatter_add_(1, lower.long()[:, None] + 1, upper_weight[:, None])
    return weights  # [B, bins, H, W]


def _hue_bin_weights(hue: Tensor, saturation: Tensor, config: HsvHistogramConfig) -> Tensor:
    """Circular hue bins plus a grey bin: ``[B, hue_bins + 1, H, W]`` (hue in radians)."""
    bins = config.hue_bins
    position = (hue / (2.0 * math.pi) * bins) % bins  # [B, H, W] in [0, bins)
    if config.soft:
        lower = position.floor()
        upper_weight = position - lower
        lower_index = lower.long() % bins
        upper_index = (lower_index + 1) % bins  # wrap-around: the last bin neighbours bin 0
    else:
        lower_index = position.round().long() % bins
        upper_index = lower_index
        upper_weight = torch.zeros_like(position)
    weights = torch.zeros(
        hue.shape[0], bins + 1, *hue.shape[1:], dtype=hue.dtype, device=hue.device
    )
    weights.scatter_add_(1, lower_index[:, None], (1.0 - upper_weight)[:, None])
    weights.scatter_add_(1, upper_index[:, None], upper_weight[:, None])
    if config.grey_saturation > 0:
        chroma = (saturation / config.grey_saturation).clamp(0.0, 1.0)  # [B, H, W]
    else:
        chroma = torch.ones_like(saturation)
    weights[:, :bins] *= chroma[:, None]
    weights[:, bins] = 1.0 - chroma
    return weights  # [B, bins + 1, H, W]


def hsv_patch_histograms(
    images: Tensor, grid_size: tuple[int, int], config: HsvHistogramConfig | None = None
) -> Tensor:
    """Per-cell HSV histograms of ``images``.

    Args:
        images: ``[B, 3, H, W]`` RGB in ``[-1, 1]``; ``H >= h`` and ``W >= w``.
        grid_size: ``(h, w)``, normally the content extractor's grid.
        config: the binning; defaults to :class:`HsvHistogramConfig()`.

    Returns:
        ``[B, h, w, D]`` float32, L2-normalised over D.
    """
    config = config or HsvHistogramConfig()
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"HSV histograms expect images [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}"
        )
    if images.shape[-2] < grid_size[0] or images.shape[-1] < grid_size[1]:
        raise ValueError(f"image {tuple(images.shape[-2:])} is smaller than the {grid_size} grid")
    rgb = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)  # [B, 3, H, W]
    hsv = rgb_to_hsv(rgb)  # [B, 3, H, W]: hue in radians, saturation and value in [0, 1]
    hue_weights = _hue_bin_weights(hsv[:, 0], hsv[:, 1], config)  # [B, Nh+1, H, W]
    sat_weights = _linear_bin_weights(
        hsv[:, 1], config.saturation_bins, config.soft
    )  # [B, Ns, H, W]
    val_weights = _linear_bin_weights(hsv[:, 2], config.value_bins, config.soft)  # [B, Nv, H, W]
    if config.layout == "marginal":
        per_pixel = torch.cat([hue_weights, sat_weights, val_weights], dim=1)  # [B, D, H, W]
        cells = F.adaptive_avg_pool2d(per_pixel, grid_size)  # [B, D, h, w]
    else:
        batch, height, width = hsv.shape[0], hsv.shape[2], hsv.shape[3]
        sat_val = sat_weights[:, :, None] * val_weights[:, None]  # [B, Ns, Nv, H, W]
        sat_val = sat_val.reshape(batch, -1, height, width)  # [B, Ns*Nv, H, W]
        # one hue bin at a time keeps memory at Ns*Nv maps instead of D
        cells = torch.cat(
            [
                F.adaptive_avg_pool2d(hue_weights[:, k : k + 1] * sat_val, grid_size)
                for k in range(hue_weights.shape[1])
            ],
            dim=1,
        )  # [B, (Nh+1)*Ns*Nv, h, w], hue-major
    histograms = cells.permute(0, 2, 3, 1)  # [B, h, w, D]
    return F.normalize(histograms, dim=-1)

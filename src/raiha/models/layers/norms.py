"""Normalisation layers for harmonization decoders.

RAIN (region-aware instance normalisation, Ling et al. 2021) normalises the
foreground features with the background statistics, so the foreground inherits the
background's "light". The arithmetic follows the authors' code exactly (SPEC 7) so
their checkpoints load: ``eps = 1e-5`` and learned fg/bg affine vectors that start
at zero and act as ``(1 + gamma)`` and ``beta``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_KINDS = ("rain", "instance", "batch", "none")


def masked_mean_std(features: Tensor, region: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of ``features`` inside ``region`` (the authors' formula).

    Args:
        features: ``[B, C, H, W]``.
        region: ``[B, 1, H, W]`` in [0, 1].
    Returns:
        mean, std: each ``[B, C, 1, 1]``.
    """
    area = region.sum(dim=(2, 3), keepdim=True)  # [B, 1, 1, 1]
    mean = (features * region).sum(dim=(2, 3), keepdim=True) / (area + eps)
    centred = features * region + (1 - region) * mean - mean  # zero outside the region
    var = centred.pow(2).sum(dim=(2, 3), keepdim=True) / (area + eps)
    return mean, torch.sqrt(var + eps)


def _fused_region_moments(features: Tensor, mask: Tensor, eps: float) -> tuple[Tensor, ...]:
    """fg/bg means and stds of a binary ``mask`` from one pass of sums (``[B, C, 1, 1]`` each).

    Equal to ``masked_mean_std`` for binary masks: the authors' variance
    ``sum(R * (x - mu)^2) / (area + eps)`` expands to ``(s2 - 2 mu s1 + mu^2 area) / (area + eps)``.
    """
    masked = features * mask  # [B, C, H, W]
    fg_sum = masked.sum(dim=(2, 3), keepdim=True)
    fg_square_sum = (masked * features).sum(dim=(2, 3), keepdim=True)
    all_sum = features.sum(dim=(2, 3), keepdim=True)
    all_square_sum = features.square().sum(dim=(2, 3), keepdim=True)
    fg_area = mask.sum(dim=(2, 3), keepdim=True)  # [B, 1, 1, 1]
    bg_area = mask[0].numel() - fg_area
    moments = []
    for total, square_total, area in (
        (all_sum - fg_sum, all_square_sum - fg_square_sum, bg_area),
        (fg_sum, fg_square_sum, fg_area),
    ):
        mean = total / (area + eps)
        var = (square_total - 2 * mean * total + mean.square() * area) / (area + eps)
        moments += [mean, torch.sqrt(var.clamp_min(0) + eps)]
    return tuple(moments)  # bg_mean, bg_std, fg_mean, fg_std


class RegionAwareInstanceNorm(nn.Module):
    """RAIN: background normalised by itself, foreground re-styled with background statistics.

    ``fused=True`` (default) computes both regions' statistics from one pass of sums and
    applies the result as one per-pixel affine map (about 3x fewer passes over the
    feature map); it equals the authors' formulation for binary masks (the masks here
    are nearest-resized binary masks) up to float rounding. ``fused=False`` is their
    formulation verbatim.
    """

    def __init__(self, channels: int, *, eps: float = 1e-5, fused: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.fused = fused
        self.foreground_gamma = nn.Parameter(torch.zeros(channels))
        self.foreground_beta = nn.Parameter(torch.zeros(channels))
        self.background_gamma = nn.Parameter(torch.zeros(channels))
        self.background_beta = nn.Parameter(torch.zeros(channels))

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Args: features ``[B, C, H, W]``; mask ``[B, 1, H', W']`` (resized here, nearest)."""
        mask = F.interpolate(mask, size=features.shape[-2:], mode="nearest")  # [B, 1, H, W]
        if self.fused:
            return self._fused_forward(features, mask.to(features.dtype))
        bg_mean, bg_std = masked_mean_std(features, 1 - mask, self.eps)
        fg_mean, fg_std = masked_mean_std(features, mask, self.eps)
        shape = (1, -1, 1, 1)
        background = (features - bg_mean) / bg_std * (1 + self.background_gamma.view(shape))
        background = (background + self.background_beta.view(shape)) * (1 - mask)
        foreground = (features - fg_mean) / fg_std * bg_std + bg_mean
        foreground = foreground * (1 + self.foreground_gamma.view(shape))
        foreground = (foreground + self.foreground_beta.view(shape)) * mask
        return background + foreground

    def _fused_forward(self, features: Tensor, mask: Tensor) -> Tensor:
        bg_mean, bg_std, fg_mean, fg_std = _fused_region_moments(features, mask, self.eps)
        shape = (1, -1, 1, 1)
        bg_gain = 1 + self.background_gamma.view(shape)
        fg_gain = 1 + self.foreground_gamma.view(shape)
        # out = x * scale + shift, region by region ([B, C, 1, 1] each)
        bg_scale = bg_gain / bg_std
        bg_shift = self.background_beta.view(shape) - bg_mean * bg_scale
        fg_scale = bg_std / fg_std * fg_gain
        fg_shift = (bg_mean - fg_mean * bg_std / fg_std) * fg_gain + self.foreground_beta.view(shape)
        # under bf16 autocast the moments are float32 and the features bf16: compute in the
        # moments' dtype, return the features' dtype
        weight = mask.to(bg_scale.dtype)
        scale = torch.lerp(bg_scale, fg_scale, weight)  # [B, C, H, W]
        shift = torch.lerp(bg_shift, fg_shift, weight)
        return torch.addcmul(shift, features.to(scale.dtype), scale).to(features.dtype)


class MaskAgnosticNorm(nn.Module):
    """Wraps a normalisation that ignores the mask, so every norm takes ``(x, mask)``."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:  # noqa: ARG002 - uniform API
        return self.norm(features)


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build a ``(features, mask) -> features`` normalisation by name (see ``NORM_KINDS``)."""
    if kind == "rain":
        return RegionAwareInstanceNorm(channels)
    if kind == "instance":
        return MaskAgnosticNorm(nn.InstanceNorm2d(channels, affine=False))
    if kind == "batch":
        return MaskAgnosticNorm(nn.BatchNorm2d(channels))
    if kind == "none":
        return MaskAgnosticNorm(nn.Identity())
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORM_KINDS}")

"""Dynamic region-aware convolution (DRConv) with two regions: foreground and background.

A 1x1 kernel per region is generated from the globally pooled input (the authors'
kernel net: average pool, 1x1 conv ``in -> 4`` with bias, sigmoid, grouped 1x1 conv
``4 -> 2*in*out`` with 2 groups and bias). Every sample is convolved with its own two
kernels; the foreground kernel's output is taken where the (nearest-resized) mask is
1 and the background kernel's elsewhere: ``out_fg * m + out_bg * (1 - m)`` (SPEC 7).

The per-sample convolution is one batched matrix product (no loop over the batch).
The authors' ``conv_guide`` layer is never used in their forward pass and has no
counterpart here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REGIONS = 2  # region 0 = foreground (mask 1), region 1 = background


class RegionAwareConv(nn.Module):
    """Two-region dynamic 1x1 convolution guided by the foreground mask."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        """Args:
        in_channels: channels of the input feature.
        out_channels: channels of the output feature.
        """
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.context_projection = nn.Conv2d(in_channels, REGIONS * REGIONS, 1)
        self.kernel_projection = nn.Conv2d(
            REGIONS * REGIONS, REGIONS * in_channels * out_channels, 1, groups=REGIONS
        )

    def region_kernels(self, features: Tensor) -> Tensor:
        """The generated kernels, ``[B, regions, out, in]``, from ``[B, in, H, W]`` features."""
        context = F.adaptive_avg_pool2d(features, 1)  # [B, in, 1, 1]
        context = torch.sigmoid(self.context_projection(context))  # [B, 4, 1, 1]
        kernels = self.kernel_projection(context)  # [B, regions*out*in, 1, 1]
        return kernels.view(features.shape[0], REGIONS, self.out_channels, self.in_channels)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Args:
        features: ``[B, in, H, W]``.
        mask: ``[B, 1, H', W']`` foreground mask; resized to ``H x W`` (nearest).
        Returns:
            ``[B, out, H, W]``.
        """
        height, width = features.shape[-2:]
        kernels = self.region_kernels(features)  # [B, R, out, in]
        kernels = kernels.flatten(1, 2)  # [B, R*out, in]
        pixels = features.flatten(2)  # [B, in, H*W]
        region_outputs = torch.bmm(kernels, pixels)  # [B, R*out, H*W]
        region_outputs = region_outputs.unflatten(1, (REGIONS, -1))  # [B, R, out, H*W]
        region_outputs = region_outputs.unflatten(3, (height, width))  # [B, R, out, H, W]
        mask = F.interpolate(mask.detach(), size=(height, width), mode="nearest")  # [B, 1, H, W]
        mask = mask.to(region_outputs.dtype)
        return region_outputs[:, 0] * mask + region_outputs[:, 1] * (1 - mask)

"""Speed switches of a harmonizer, each a config value (``model.*``), each measured in
``benchmarks/train_step.py``: fused kernels (RAIN from one pass of sums, attention through
``scaled_dot_product_attention`` in training) and the channels-last memory format."""

from __future__ import annotations

import torch
from torch import nn

from raiha.models.layers.fusion import MaskedFusionAttention
from raiha.models.layers.norms import RegionAwareInstanceNorm


def set_fused_kernels(model: nn.Module, enabled: bool) -> int:
    """Switch every fused-capable layer of ``model``; returns how many were switched."""
    switched = 0
    for module in model.modules():
        if isinstance(module, (RegionAwareInstanceNorm, MaskedFusionAttention)):
            module.fused = enabled
            switched += 1
    return switched


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert the convolution weights to channels-last (inputs follow the first conv)."""
    return model.to(memory_format=torch.channels_last)

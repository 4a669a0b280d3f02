"""Layout helpers for dense feature grids.

Convention for the whole retrieval package: a feature grid is **channels-last**,
``[B, h, w, C]`` (one C-dim vector per patch), because retrieval compares patches,
not images. Models elsewhere in raiha use channels-first ``[B, C, h, w]``; convert
with :func:`to_channels_first` / :func:`to_channels_last`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def to_channels_last(grid: Tensor) -> Tensor:
    """``[B, C, h, w]`` -> ``[B, h, w, C]`` (contiguous)."""
    if grid.ndim != 4:
        raise ValueError(f"expected a [B, C, h, w] grid, got shape {tuple(grid.shape)}")
    return grid.permute(0, 2, 3, 1).contiguous()  # [B, h, w, C]


def to_channels_first(grid: Tensor) -> Tensor:
    """``[B, h, w, C]`` -> ``[B, C, h, w]`` (contiguous)."""
    if grid.ndim != 4:
        raise ValueError(f"expected a [B, h, w, C] grid, got shape {tuple(grid.shape)}")
    return grid.permute(0, 3, 1, 2).contiguous()  # [B, C, h, w]


def mask_to_cells(mask: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Foreground cells of a grid: a cell is foreground if any of its pixels is (> 0).

    Args:
        mask: ``[H, W]``, ``[1, H, W]`` or ``[B, 1, H, W]``; any value > 0 is foreground.
        grid_size: ``(h, w)`` of the feature grid.

    Returns:
        bool ``[h, w]`` (or ``[B, h, w]`` for a batched mask).
    """
    batched = mask.ndim == 4
    if mask.ndim == 2:
        mask = mask[None, None]  # [1, 1, H, W]
    elif mask.ndim == 3:
        mask = mask[None]  # [1, 1, H, W]
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be [H, W], [1, H, W] or [B, 1, H, W], got {tuple(mask.shape)}")
    height, width = mask.shape[-2:]
    if height < grid_size[0] or width < grid_size[1]:
        raise ValueError(
            f"mask {height}x{width} is smaller than the {grid_size[0]}x{grid_size[1]} grid"
        )
    # adaptive pooling covers every pixel even when H is not a multiple of h
    cells = F.adaptive_max_pool2d((mask > 0).float(), grid_size) > 0  # [B, 1, h, w]
    cells = cells[:, 0]  # [B, h, w]
    return cells if batched else cells[0]

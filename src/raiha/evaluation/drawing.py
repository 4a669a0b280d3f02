"""Drawing for people: image grids (composite | output | target | mask | attention) and
attention overlays, used alike by the training callbacks, the Harmonizer and the notebooks."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid


def attention_overlay(image: Tensor, heat: Tensor) -> Tensor:
    """Heat ``[B, 1, H, W]`` in [0, 1] drawn in red over a dimmed grey ``image`` ``[B, 3, H, W]`` in [-1, 1]."""
    grey = ((image + 1) / 2).mean(dim=1, keepdim=True) * 0.5  # [B, 1, H, W]
    red = torch.tensor([1.0, 0.1, 0.0], device=image.device).view(1, 3, 1, 1)
    drawn = grey * (1 - heat) + red * heat  # [B, 3, H, W] in [0, 1]
    return drawn * 2 - 1


def harmonization_grid(
    composite: Tensor,
    prediction: Tensor,
    target: Tensor,
    mask: Tensor,
    reference: Tensor | None = None,
    attention_map: Tensor | None = None,
) -> Tensor:
    """One row per image, in [0, 1]: composite | [reference |] output | target | mask
    [| attention on the background | attention on the reference].

    Args: images ``[B, 3, H, W]`` in [-1, 1]; mask ``[B, 1, H, W]``; ``attention_map``
    ``[B, 1, H, W]`` (no reference) or ``[B, 1, H, 2W]`` (reference on the right).
    Returns: ``[3, B*H', K*W']`` (with padding).
    """
    columns = [composite] + ([reference] if reference is not None else [])
    columns += [prediction, target, mask.expand_as(composite) * 2 - 1]
    if attention_map is not None:
        width = composite.shape[-1]
        heat = attention_map.to(composite.dtype)
        columns.append(attention_overlay(composite, heat[..., :width]))
        if reference is not None and heat.shape[-1] == 2 * width:
            columns.append(attention_overlay(reference, heat[..., width:]))
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # [B*4, 3, H, W]
    tiles = (tiles.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)

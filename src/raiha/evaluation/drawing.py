"""Drawing for people: image grids (composite | output | target | mask | attention) and
attention overlays, used alike by the training callbacks, the Harmonizer and the notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid

GRID_PADDING = 2


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
    return make_grid(tiles, nrow=len(columns), padding=GRID_PADDING, pad_value=1.0)


def grid_column_titles(reference: bool, attention: bool) -> list[str]:
    """The column titles of :func:`harmonization_grid` for these inputs."""
    titles = ["composite"] + (["reference"] if reference else []) + ["output", "target", "mask"]
    if attention:
        titles += ["attn: bg", "attn: ref"] if reference else ["attention"]  # background | reference
    return titles


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, width: float, height: int) -> ImageFont.ImageFont:
    """The largest default font (<= ``height`` px) whose rendering of ``text`` fits ``width``."""
    for size in range(max(height, 6), 5, -1):
        font = ImageFont.load_default(size=size)
        left, _, right, _ = draw.textbbox((0, 0), text, font=font)
        if right - left <= width:
            return font
    return ImageFont.load_default(size=6)


def add_column_titles(grid: Tensor, titles: Sequence[str], padding: int = GRID_PADDING) -> Tensor:
    """``[3, H, W]`` in [0, 1] -> ``[3, T + H, W]``: a white strip with one title centred over
    each of the ``len(titles)`` equal columns (black text, shrunk to fit its column)."""
    width = grid.shape[-1]
    column = (width - padding) / len(titles)
    strip_height = max(12, int(column // 5))
    strip = Image.new("RGB", (width, strip_height), "white")
    draw = ImageDraw.Draw(strip)
    for index, title in enumerate(titles):
        font = _fitting_font(draw, title, column - 4, strip_height - 2)
        left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
        x = padding + index * column + (column - (right - left)) / 2 - left
        draw.text((x, (strip_height - (bottom - top)) / 2 - top), title, fill="black", font=font)
    header = torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1).float() / 255  # [3, T, W]
    return torch.cat([header.to(grid.dtype), grid.cpu()], dim=1)


def titled_harmonization_grid(
    composite: Tensor,
    prediction: Tensor,
    target: Tensor,
    mask: Tensor,
    reference: Tensor | None = None,
    attention_map: Tensor | None = None,
) -> tuple[Tensor, list[str]]:
    """:func:`harmonization_grid` with its column titles drawn on top; returns it and the titles."""
    grid = harmonization_grid(composite, prediction, target, mask, reference=reference, attention_map=attention_map)
    reference_shown = reference is not None
    two_maps = attention_map is not None and reference_shown and attention_map.shape[-1] == 2 * composite.shape[-1]
    titles = grid_column_titles(reference_shown, attention_map is not None)
    if attention_map is not None and reference_shown and not two_maps:
        titles = titles[:-1]  # the map covers the background only
        titles[-1] = "attention"
    return add_column_titles(grid, titles), titles

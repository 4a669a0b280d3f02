"""Augmented references made from the target image (paper III-C, SPEC 5).

A random ``crop_size`` x ``crop_size`` crop of the real image at training size that
holds at least ``min_foreground_fraction`` of the foreground area (``tries`` draws,
else the whole image), resized back to the full size, flipped horizontally at random.
The crop box and the flip are returned so a cached semantic grid can be cropped and
resampled the same way instead of recomputing the frozen ViT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropBox:
    """A crop in pixels of the source image: rows ``top:top+size``, columns ``left:left+size``."""

    top: int
    left: int
    size: int
    source_size: int
    flipped: bool

    @property
    def is_whole_image(self) -> bool:
        return self.size == self.source_size


def draw_crop_box(
    mask: Tensor,
    generator: torch.Generator,
    *,
    crop_size: int,
    min_foreground_fraction: float = 0.5,
    tries: int = 5,
    flip_probability: float = 0.5,
) -> CropBox:
    """Draw the crop for one image.

    Args:
        mask: ``[1, S, S]`` foreground mask of the target image.
        generator: the random source (seeded per sample for reproducibility).
        crop_size: side of the square crop (196 at S = 256 in the paper).
    """
    size = mask.shape[-1]
    if mask.shape[-2] != size:
        raise ValueError(f"augmented references need square images, got {tuple(mask.shape)}")
    crop_size = min(crop_size, size)
    foreground_area = float(mask.sum())
    chosen = (0, 0, size)
    for _ in range(tries):
        top, left = (int(v) for v in torch.randint(0, size - crop_size + 1, (2,), generator=generator))
        inside = float(mask[..., top : top + crop_size, left : left + crop_size].sum())
        if foreground_area > 0 and inside >= min_foreground_fraction * foreground_area:
            chosen = (top, left, crop_size)
            break
    flipped = bool(torch.rand((), generator=generator) < flip_probability)
    return CropBox(top=chosen[0], left=chosen[1], size=chosen[2], source_size=size, flipped=flipped)


def apply_crop_box(image: Tensor, box: CropBox, *, mode: str = "bilinear") -> Tensor:
    """Crop ``image`` ``[C, S', S']`` by ``box`` (scaled to its size), resize back to ``S'``, flip.

    Works on images and on semantic grids (``S' = S / 8``) alike; on a grid the box is
    scaled in continuous coordinates (``roi_align``-style bilinear resampling).
    """
    channels, height, width = image.shape
    scale = width / box.source_size
    if box.is_whole_image:
        result = image
    elif scale == 1.0:
        crop = image[:, box.top : box.top + box.size, box.left : box.left + box.size]
        corners = {} if mode == "nearest" else {"align_corners": False}
        result = F.interpolate(crop[None], size=(height, width), mode=mode, **corners)[0]
    else:
        result = _resample_box(image, box, scale, mode)
    return result.flip(-1) if box.flipped else result


def _resample_box(grid: Tensor, box: CropBox, scale: float, mode: str) -> Tensor:
    """Sample ``grid`` ``[C, h, w]`` over the scaled box with ``grid_sample``."""
    _, height, width = grid.shape
    top, left, size = box.top * scale, box.left * scale, box.size * scale
    # cell centres of the output, in the input's pixel coordinates
    steps = (torch.arange(width, dtype=grid.dtype, device=grid.device) + 0.5) / width
    xs = left + steps * size
    ys = top + steps * size
    # to grid_sample's [-1, 1] (align_corners=False)
    xs = xs / width * 2 - 1
    ys = ys / height * 2 - 1
    sample_y, sample_x = torch.meshgrid(ys, xs, indexing="ij")  # [h, w] each
    sample_grid = torch.stack([sample_x, sample_y], dim=-1)[None]  # [1, h, w, 2]
    return F.grid_sample(grid[None], sample_grid, mode=mode, align_corners=False, padding_mode="border")[0]


def augmented_reference(
    real: Tensor,
    mask: Tensor,
    generator: torch.Generator,
    *,
    crop_fraction: float = 196 / 256,
    min_foreground_fraction: float = 0.5,
    tries: int = 5,
) -> tuple[Tensor, CropBox]:
    """The augmented reference of one sample: ``([3, S, S] image, the crop box used)``."""
    box = draw_crop_box(
        mask,
        generator,
        crop_size=round(crop_fraction * real.shape[-1]),
        min_foreground_fraction=min_foreground_fraction,
        tries=tries,
    )
    return apply_crop_box(real, box), box

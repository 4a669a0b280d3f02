"""Augmented references: the crop keeps the foreground, grids follow the image."""

from __future__ import annotations

import torch

from raiha.data.references.augmented_reference import (
    CropBox,
    apply_crop_box,
    augmented_reference,
    draw_crop_box,
)


def _random_mask(generator: torch.Generator, size: int = 64) -> torch.Tensor:
    mask = torch.zeros(1, size, size)
    height, width = (int(v) for v in torch.randint(6, 30, (2,), generator=generator))
    top, left = (int(v) for v in torch.randint(0, size - 30, (2,), generator=generator))
    mask[:, top : top + height, left : left + width] = 1
    return mask


def test_crops_always_hold_half_of_the_foreground_or_are_the_whole_image() -> None:
    generator = torch.Generator().manual_seed(0)
    crops = 0
    for _ in range(300):
        mask = _random_mask(generator)
        box = draw_crop_box(mask, generator, crop_size=49)
        inside = mask[:, box.top : box.top + box.size, box.left : box.left + box.size].sum()
        assert inside >= 0.5 * mask.sum()
        assert box.size in (49, 64)
        crops += not box.is_whole_image
    assert crops > 250  # whole-image fallbacks are rare for such masks


def test_empty_mask_falls_back_to_the_whole_image() -> None:
    box = draw_crop_box(torch.zeros(1, 32, 32), torch.Generator().manual_seed(1), crop_size=24)
    assert box.is_whole_image


def test_flip_rate_and_determinism() -> None:
    mask = torch.ones(1, 32, 32)
    flips = [draw_crop_box(mask, torch.Generator().manual_seed(s), crop_size=24).flipped for s in range(400)]
    assert 0.4 < sum(flips) / len(flips) < 0.6
    first = draw_crop_box(mask, torch.Generator().manual_seed(7), crop_size=24)
    assert draw_crop_box(mask, torch.Generator().manual_seed(7), crop_size=24) == first


def test_image_crop_known_answer() -> None:
    image = torch.arange(16.0).view(1, 4, 4)
    box = CropBox(top=1, left=2, size=2, source_size=4, flipped=False)
    out = apply_crop_box(image, box, mode="nearest")
    expected = torch.tensor([[6.0, 6.0, 7.0, 7.0], [6.0, 6.0, 7.0, 7.0], [10.0, 10.0, 11.0, 11.0], [10.0, 10.0, 11.0, 11.0]])
    assert torch.equal(out[0], expected)
    flipped = apply_crop_box(image, CropBox(1, 2, 2, 4, True), mode="nearest")
    assert torch.equal(flipped[0], expected.flip(-1))


def test_grid_resampling_matches_the_pooled_image_crop() -> None:
    """Cropping a 1/8 grid of a smooth image ~ the 1/8 grid of the cropped image."""
    size, cell = 64, 8
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([xs, ys, xs * ys])  # [3, 64, 64] smooth
    box = CropBox(top=8, left=16, size=48, source_size=size, flipped=True)
    cropped_image = apply_crop_box(image, box)
    grid_of_crop = torch.nn.functional.avg_pool2d(cropped_image[None], cell)[0]  # [3, 8, 8]
    grid = torch.nn.functional.avg_pool2d(image[None], cell)[0]
    crop_of_grid = apply_crop_box(grid, box)
    assert crop_of_grid.shape == (3, 8, 8)
    assert (crop_of_grid - grid_of_crop).abs().max() < 0.03


def test_augmented_reference_shapes() -> None:
    generator = torch.Generator().manual_seed(3)
    real = torch.rand(3, 64, 64) * 2 - 1
    reference, box = augmented_reference(real, _random_mask(generator), generator)
    assert reference.shape == real.shape
    assert box.size in (49, 64)

"""Generated "own photos" for the composite tests: smooth colour fields with ellipse objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3]: a random colour gradient plus mild noise (a stand-in for a photo)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    corners = rng.uniform(40, 215, size=(4, 3))
    image = (
        corners[0] * (1 - x[..., None]) * (1 - y[..., None]) + corners[1] * x[..., None] * (1 - y[..., None])
        + corners[2] * (1 - x[..., None]) * y[..., None] + corners[3] * x[..., None] * y[..., None]
    )
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def ellipse_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """bool [H, W]: an ellipse covering roughly 5-25 % of the image."""
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def write_photo_folder(root: Path, count: int, size: tuple[int, int] = (40, 56), seed: int = 0,
                       photo_format: str = "png") -> tuple[Path, Path]:
    """``root/photos/photo_<i>.<format>`` and ``root/masks/photo_<i>.png``: objects painted in a distinct colour."""
    rng = np.random.default_rng(seed)
    photos, masks = root / "photos", root / "masks"
    photos.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    height, width = size
    for index in range(count):
        image = smooth_photo(rng, height, width)
        mask = ellipse_mask(rng, height, width)
        image[mask] = np.clip(image[mask].astype(int) // 2 + rng.integers(40, 120, size=3), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(photos / f"photo_{index}.{photo_format}", quality=95)
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"photo_{index}.png")
    return photos, masks

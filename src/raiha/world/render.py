"""Draw a planned scene: albedo, light, shading -> real image, composite and mask.

``pixel = clip(albedo * light_rgb * shading, 0, 1)`` where ``light_rgb`` is the
illuminant's ``gains * brightness`` and ``shading = 1 + s * (cos(a) x + sin(a) y) / sqrt(2)``
with ``x, y`` in [-1, 1] (pixel centres), a linear gradient of amplitude
``s = shading_strength`` shared by the whole scene. The real image lights every pixel
with the background illuminant; the composite is the same image except that the
foreground object's pixels are lit by the composite illuminant (times the scene's
``composite_gains`` when the world jitters the composite light). Objects are binary
(no anti-aliasing), so the mask is exactly the foreground's visible pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from raiha.world.catalogue import Catalogue
from raiha.world.plan import SceneSpec

MIN_MASK_FRACTION = 0.03
CORE_HALF_SIDE = 0.2


@dataclasses.dataclass(frozen=True)
class RenderedScene:
    """One drawn scene, before quantisation.

    Attributes:
        real: float32 ``[S, S, 3]`` in [0, 1], all lit by the background illuminant.
        composite: float32 ``[S, S, 3]``, the foreground relit by the composite illuminant.
        mask: bool ``[S, S]``, the foreground's pixels.
        labels: int16 ``[S, S]``, index into ``spec.objects`` per pixel, -1 for background.
        albedo: float32 ``[S, S, 3]``, the unlit scene.
        shading: float32 ``[S, S]``, the shading field.
    """

    real: np.ndarray
    composite: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    albedo: np.ndarray
    shading: np.ndarray


def _object_coordinates(bbox: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1] across the box: ``u`` ``[1, w]`` (x), ``v`` ``[h, 1]`` (y)."""
    x0, y0, x1, y1 = bbox
    u = (np.arange(x1 - x0, dtype=np.float32) + 0.5) / (x1 - x0)
    v = (np.arange(y1 - y0, dtype=np.float32) + 0.5) / (y1 - y0)
    return u[None, :], v[:, None]


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-the-shape test over the box, bool ``[h, w]``."""
    cu, cv = u - 0.5, v - 0.5
    if shape == "disc":
        inside = cu**2 + cv**2 <= 0.25
    elif shape == "square":
        inside = np.ones((v.shape[0], u.shape[1]), dtype=bool)
    elif shape == "triangle":  # apex at the top centre, base along the bottom
        inside = np.abs(cu) <= 0.5 * v
    elif shape == "diamond":
        inside = np.abs(cu) + np.abs(cv) <= 0.5
    elif shape == "cross":  # arms a third of the box wide
        inside = (np.abs(cu) <= 1.0 / 6.0) | (np.abs(cv) <= 1.0 / 6.0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.broadcast_to(inside, (v.shape[0], u.shape[1]))


def pattern_selector(pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which palette colour (0 or 1) each box pixel takes, int64 ``[h, w]``."""
    if pattern == "core":  # a central square of the second colour, 40% of the box wide
        second = (np.abs(u - 0.5) < CORE_HALF_SIDE) & (np.abs(v - 0.5) < CORE_HALF_SIDE)
    elif pattern == "stripes":  # 4 vertical bands
        second = np.floor(u * 4) % 2 == 1
    elif pattern == "checker":  # 3 x 3 cells
        second = (np.floor(u * 3) + np.floor(v * 3)) % 2 == 1
    elif pattern == "halves":  # top / bottom
        second = v >= 0.5
    elif pattern == "dots":  # 3 x 3 dots of the second colour
        du, dv = (u * 3) % 1.0 - 0.5, (v * 3) % 1.0 - 0.5
        second = du**2 + dv**2 <= 0.3**2
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return np.broadcast_to(second, (v.shape[0], u.shape[1])).astype(np.int64)


def shading_field(size: int, angle: float, strength: float) -> np.ndarray:
    """Linear gradient ``1 + strength * (cos(a) x + sin(a) y) / sqrt(2)``, float32 ``[S, S]``."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0  # [S] in (-1, 1)
    gradient = np.cos(angle) * coords[None, :] + np.sin(angle) * coords[:, None]  # [S, S]
    return (1.0 + strength * gradient / np.sqrt(2.0)).astype(np.float32)


def relight(albedo: np.ndarray, light_rgb: np.ndarray, shading: np.ndarray) -> np.ndarray:
    """``clip(albedo * light_rgb * shading, 0, 1)``.

    Args:
        albedo: ``[S, S, 3]``.
        light_rgb: ``[3]`` or per-pixel ``[S, S, 3]``.
        shading: ``[S, S]``.
    """
    return np.clip(albedo * light_rgb * shading[..., None], 0.0, 1.0).astype(np.float32)


def render_albedo(spec: SceneSpec, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """The unlit scene ``[S, S, 3]`` and its object label map ``[S, S]`` (-1 = background)."""
    wall, floor = spec.materials
    albedo = catalogue.material_albedos[wall].copy()  # [S, S, 3]
    albedo[spec.horizon :] = catalogue.material_albedos[floor][spec.horizon :]
    size = albedo.shape[0]
    labels = np.full((size, size), -1, dtype=np.int16)
    for index, obj in enumerate(spec.objects):
        shape, pattern = catalogue.class_shape_pattern(
            int(catalogue.identity_classes[obj.identity])
        )
        u, v = _object_coordinates(obj.bbox)
        inside = shape_mask(shape, u, v)  # [h, w]
        palette = catalogue.identity_palettes[obj.identity].astype(np.float32) / 255.0  # [2, 3]
        colours = palette[pattern_selector(pattern, u, v)]  # [h, w, 3]
        x0, y0, x1, y1 = obj.bbox
        albedo_box = albedo[y0:y1, x0:x1]  # view [h, w, 3]
        albedo_box[inside] = colours[inside]
        labels[y0:y1, x0:x1][inside] = index
    return albedo, labels


def render_scene(spec: SceneSpec, catalogue: Catalogue, shading_strength: float) -> RenderedScene:
    """Draw ``spec``: real, composite (foreground relit) and mask, all float before JPEG."""
    albedo, labels = render_albedo(spec, catalogue)
    size = albedo.shape[0]
    shading = shading_field(size, spec.shading_angle, shading_strength)
    mask = labels == len(spec.objects) - 1  # [S, S]
    if mask.mean() < MIN_MASK_FRACTION:
        raise RuntimeError(
            f"scene {spec.name}: foreground covers {mask.mean():.1%} of the image, below "
            f"{MIN_MASK_FRACTION:.0%}; this is a planner bug, please report it with the config"
        )
    background_light = catalogue.illuminant_rgb[spec.illuminant]  # [3]
    composite_light = catalogue.illuminant_rgb[spec.composite_illuminant] * np.asarray(
        spec.composite_gains, dtype=np.float32
    )  # [3]
    real = relight(albedo, background_light, shading)
    per_pixel_light = np.where(mask[..., None], composite_light, background_light)  # [S, S, 3]
    composite = relight(albedo, per_pixel_light, shading)
    return RenderedScene(
        real=real, composite=composite, mask=mask, labels=labels, albedo=albedo, shading=shading
    )

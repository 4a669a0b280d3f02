"""The fixed tables of the synthetic world: illuminants, background materials, classes and
the palette priors' constants. They never depend on a world's config or seed."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Illuminant:
    """A light: ``rgb = gains * brightness`` multiplies the albedo."""

    name: str
    gains: tuple[float, float, float]
    brightness: float

    @property
    def rgb(self) -> np.ndarray:
        """Effective per-channel multiplier, float32 ``[3]``."""
        return np.asarray(self.gains, dtype=np.float32) * np.float32(self.brightness)


ILLUMINANT_TABLE: tuple[Illuminant, ...] = (
    Illuminant("bright_neutral", (1.0, 1.0, 1.0), 1.2),
    Illuminant("warm", (1.3, 1.0, 0.65), 1.0),
    Illuminant("cool", (0.7, 0.95, 1.3), 1.0),
    Illuminant("greenish", (0.8, 1.3, 0.75), 0.9),
    Illuminant("magentaish", (1.3, 0.7, 1.25), 0.9),
    Illuminant("dim_neutral", (1.0, 1.0, 1.0), 0.55),
    Illuminant("amber", (1.35, 0.85, 0.45), 0.8),
    Illuminant("teal", (0.55, 1.15, 1.15), 0.9),
)

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "diamond", "cross")
PATTERNS: tuple[str, ...] = ("core", "stripes", "checker", "halves", "dots")
CLASS_NAMES: tuple[str, ...] = tuple(
    f"{shape}/{pattern}" for shape in SHAPES for pattern in PATTERNS
)

# Palette ranges: saturated enough to tell hues apart, never so dark that JPEG noise
# swamps a channel, never so bright that a light clips it (max gain x shading < 1 / 0.65)
PALETTE_SATURATION = (0.35, 0.7)
PALETTE_VALUE = (0.35, 0.65)
# identities' light-invariant signatures (log colour ratio, up to sign) lie this far apart
PALETTE_MIN_SEPARATION = 0.25
PALETTE_LOG_EPSILON = 0.03
PALETTE_TRIES = 200
# palette_prior="log_uniform": every channel of both colours log-uniform in this range, so a
# per-channel gain maps one plausible palette onto another (the light cannot be read off
# the object's colours); the two colours' signature must be at least this long
PALETTE_PRIORS = ("hsv", "log_uniform")
LOG_UNIFORM_RANGE = (0.1, 0.6)
LOG_UNIFORM_MIN_CONTRAST = 0.5

_MATERIAL_NOISE_SEED = 20241218  # fixed: materials never depend on the world seed


def _two_tone(
    size: int, selector: np.ndarray, first: tuple[float, ...], second: tuple[float, ...]
) -> np.ndarray:
    """``first`` where ``selector`` is False, ``second`` where True: ``[size, size, 3]``."""
    colours = np.asarray([first, second], dtype=np.float32)  # [2, 3]
    return colours[selector.astype(np.int64)]  # [S, S, 3]


def _material_grey_flat(size: int) -> np.ndarray:
    return np.full((size, size, 3), 0.5, dtype=np.float32)


def _material_beige_stripes(size: int) -> np.ndarray:
    rows = np.arange(size)[:, None] * 8 // size  # 8 horizontal bands
    selector = np.broadcast_to(rows % 2 == 1, (size, size))
    return _two_tone(size, selector, (0.76, 0.65, 0.5), (0.5, 0.36, 0.24))


def _material_bluegrey_checker(size: int) -> np.ndarray:
    cells = np.arange(size) * 6 // size  # 6 x 6 checker
    selector = (cells[:, None] + cells[None, :]) % 2 == 1
    return _two_tone(size, selector, (0.45, 0.5, 0.6), (0.3, 0.34, 0.42))


def _material_green_noise(size: int) -> np.ndarray:
    coarse = np.random.default_rng(_MATERIAL_NOISE_SEED).uniform(-1.0, 1.0, size=(9, 9))
    positions = np.linspace(0.0, 8.0, size)
    low = np.floor(positions).astype(np.int64).clip(0, 7)
    frac = positions - low
    rows = coarse[low] * (1 - frac)[:, None] + coarse[low + 1] * frac[:, None]  # [S, 9]
    field = rows[:, low] * (1 - frac)[None, :] + rows[:, low + 1] * frac[None, :]  # [S, S] bilinear
    base = np.asarray((0.35, 0.5, 0.3), dtype=np.float32)
    return (base * (1.0 + 0.25 * field[..., None])).astype(np.float32)  # [S, S, 3]


def _material_brick(size: int) -> np.ndarray:
    coords = np.arange(size)
    row_band = coords * 8 // size
    mortar_rows = (coords * 8 % size) < max(1, size // 48)
    shift = np.where(row_band % 2 == 1, size // 8, 0)[:, None]
    mortar_cols = ((coords[None, :] + shift) * 4 % size) < max(1, size // 48)
    selector = mortar_rows[:, None] | mortar_cols
    return _two_tone(size, selector, (0.6, 0.3, 0.22), (0.7, 0.68, 0.64))


def _material_white_tiles(size: int) -> np.ndarray:
    coords = np.arange(size)
    grout = (coords * 5 % size) < max(1, size // 32)
    selector = grout[:, None] | grout[None, :]
    return _two_tone(size, selector, (0.72, 0.72, 0.7), (0.4, 0.4, 0.42))


MATERIAL_TABLE: tuple[tuple[str, Any], ...] = (
    ("grey_flat", _material_grey_flat),
    ("beige_stripes", _material_beige_stripes),
    ("bluegrey_checker", _material_bluegrey_checker),
    ("green_noise", _material_green_noise),
    ("brick", _material_brick),
    ("white_tiles", _material_white_tiles),
)


def material_albedo(index: int, size: int) -> np.ndarray:
    """The albedo image of material ``index`` at ``size`` px, float32 ``[size, size, 3]``."""
    return MATERIAL_TABLE[index][1](size).astype(np.float32)

"""The catalogue of a synthetic world: illuminants, background materials, classes, identities.

- Illuminants: a fixed table of 8 well separated lights (per-channel gains and a
  brightness); a world uses the first ``num_illuminants``. Light on an albedo ``a`` is
  ``a * gains * brightness`` (times the scene's shading), so two illuminants of one
  albedo differ by the constant per-channel ratio of their ``gains * brightness``.
- Materials: a fixed table of 6 background albedo patterns with fixed colours (they do
  not depend on the seed), so a background's light can be inferred from its pixels.
  Pattern periods scale with the image size; the noise material uses its own fixed seed.
- Classes: shape family x texture pattern (5 x 5 = 25). Patterns live in the object's
  own coordinates, so they scale with the object. Every pattern shows both palette
  colours (there is no single-colour pattern): the ratio of the two colours is what
  identifies an object whatever the light, so every identity can be retrieved.
- Identities: a class (balanced over identities) plus a palette of two colours drawn
  once per world from a wide HSV range (saturation >= 0.35, value in [0.3, 0.8], the
  second hue at least 0.15 turns away), stored as uint8 RGB; albedo = palette / 255.
"""

from __future__ import annotations

import colorsys
import dataclasses
from typing import Any

import numpy as np

from raiha.world.config import SyntheticWorldConfig
from raiha.world.tables import (
    CLASS_NAMES,
    ILLUMINANT_TABLE,
    LOG_UNIFORM_MIN_CONTRAST,
    LOG_UNIFORM_RANGE,
    MATERIAL_TABLE,
    PALETTE_LOG_EPSILON,
    PALETTE_MIN_SEPARATION,
    PALETTE_SATURATION,
    PALETTE_TRIES,
    PALETTE_VALUE,
    PATTERNS,
    SHAPES,
    Illuminant,
    material_albedo,
)


def _random_palette(rng: np.random.Generator, prior: str = "hsv") -> np.ndarray:
    """Two distinct colours, uint8 ``[2, 3]``: saturated HSV colours, or per-channel log-uniform."""
    if prior == "log_uniform":
        low, high = np.log(LOG_UNIFORM_RANGE)
        while True:
            colours = np.exp(rng.uniform(low, high, size=(2, 3)))
            palette = np.round(colours * 255.0).astype(np.uint8)
            if np.linalg.norm(palette_signature(palette)) >= LOG_UNIFORM_MIN_CONTRAST:
                return palette
    hue = rng.uniform(0.0, 1.0)
    hues = (hue, (hue + rng.uniform(0.15, 0.85)) % 1.0)
    colours = [
        colorsys.hsv_to_rgb(h, rng.uniform(*PALETTE_SATURATION), rng.uniform(*PALETTE_VALUE))
        for h in hues
    ]
    return np.round(np.asarray(colours) * 255.0).astype(np.uint8)


def palette_signature(palettes: np.ndarray) -> np.ndarray:
    """The light-invariant signature of palettes ``[..., 2, 3]`` (uint8): ``log(c2) - log(c1)`` ``[..., 3]``.

    A light multiplies both colours by the same per-channel gains, so it cancels here.
    """
    log_colours = np.log(palettes.astype(np.float64) / 255.0 + PALETTE_LOG_EPSILON)
    return log_colours[..., 1, :] - log_colours[..., 0, :]


def _separated_palettes(count: int, rng: np.random.Generator, prior: str = "hsv") -> np.ndarray:
    """``count`` palettes whose signatures (up to sign) lie >= PALETTE_MIN_SEPARATION apart.

    Identities must stay distinguishable under any light: two palettes whose colours differ
    by a per-channel factor look alike once relit. Candidates too close to an accepted one
    are redrawn; after ``PALETTE_TRIES`` misses the farthest candidate is kept.
    """
    palettes: list[np.ndarray] = []
    signatures = np.zeros((0, 3))
    for _ in range(count):
        best, best_gap = None, -1.0
        for _ in range(PALETTE_TRIES):
            candidate = _random_palette(rng, prior)
            signature = palette_signature(candidate)
            gap = (
                float(
                    np.minimum(
                        np.linalg.norm(signatures - signature, axis=1),
                        np.linalg.norm(signatures + signature, axis=1),
                    ).min()
                )
                if len(signatures)
                else np.inf
            )
            if gap > best_gap:
                best, best_gap = candidate, gap
            if gap >= PALETTE_MIN_SEPARATION:
                break
        palettes.append(best)
        signatures = np.vstack([signatures, palette_signature(best)[None]])
    return np.stack(palettes)


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """Everything fixed for a world; built by ``build_catalogue(cfg)``.

    Attributes:
        illuminant_rgb: float32 ``[L, 3]`` effective gains of the world's illuminants.
        material_albedos: float32 ``[M, S, S, 3]`` albedo images of the world's materials.
        identity_classes: int64 ``[N]`` class index of each identity.
        identity_palettes: uint8 ``[N, 2, 3]`` the two colours of each identity.
    """

    illuminants: tuple[Illuminant, ...]
    illuminant_rgb: np.ndarray
    material_names: tuple[str, ...]
    material_albedos: np.ndarray
    identity_classes: np.ndarray
    identity_palettes: np.ndarray

    @property
    def num_identities(self) -> int:
        return int(self.identity_classes.shape[0])

    def class_shape_pattern(self, class_index: int) -> tuple[str, str]:
        """``(shape, pattern)`` names of a class."""
        return SHAPES[class_index // len(PATTERNS)], PATTERNS[class_index % len(PATTERNS)]

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (illuminants, materials, classes, identities)."""
        return {
            "illuminants": [
                {"name": light.name, "gains": list(light.gains), "brightness": light.brightness}
                for light in self.illuminants
            ],
            "materials": [
                {
                    "name": name,
                    "mean_albedo": [round(float(v), 4) for v in albedo.mean(axis=(0, 1))],
                }
                for name, albedo in zip(self.material_names, self.material_albedos, strict=True)
            ],
            "classes": [
                {"name": name, "shape": name.split("/")[0], "pattern": name.split("/")[1]}
                for name in CLASS_NAMES
            ],
            "identities": [
                {"class": int(class_index), "palette": palette.tolist()}
                for class_index, palette in zip(
                    self.identity_classes, self.identity_palettes, strict=True
                )
            ],
        }


def build_catalogue(cfg: SyntheticWorldConfig) -> Catalogue:
    """The catalogue of ``cfg``'s world (deterministic in ``cfg.seed``)."""
    rng = np.random.default_rng([cfg.seed, 0])
    illuminants = ILLUMINANT_TABLE[: cfg.num_illuminants]
    num_classes = len(CLASS_NAMES)
    identity_classes = rng.permutation(np.arange(cfg.num_identities) % num_classes).astype(np.int64)
    identity_palettes = _separated_palettes(cfg.num_identities, rng, cfg.palette_prior)  # [N, 2, 3]
    return Catalogue(
        illuminants=illuminants,
        illuminant_rgb=np.stack([light.rgb for light in illuminants]),  # [L, 3]
        material_names=tuple(name for name, _ in MATERIAL_TABLE[: cfg.num_materials]),
        material_albedos=np.stack(
            [material_albedo(i, cfg.image_size) for i in range(cfg.num_materials)]
        ),
        identity_classes=identity_classes,
        identity_palettes=identity_palettes,
    )

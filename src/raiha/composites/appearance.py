"""Foreground appearance changes: how a composite's object is made to look wrong.

Each change maps foreground pixels ``[N, 3]`` (sRGB floats in [0, 1]) to new ones; its
parameters are drawn from a ``numpy.random.Generator`` and kept as plain JSON values
(written to the manifest). The result is clipped to [0, 1] by the caller.

- ``lab_transfer``: the colour statistics of another photo's object, iHarmony4's HCOCO way
  (Reinhard et al. 2001 in CIE Lab): ``lab' = (lab - mean) / std * std_ref + mean_ref`` per
  channel, over the foreground. Params: ``reference`` (an object key).
- ``illuminant``: a new light in linear sRGB: ``linear' = linear * gain_c * 2 ** exposure``,
  ``gain_c = exp(U(-gain_range, gain_range))``, ``exposure ~ U(-exposure_range, exposure_range)``.
- ``tone``: tone and saturation curves on the encoded values: ``y = x ** gamma``,
  ``y = 0.5 + contrast * (y - 0.5)``, then ``y = luma + saturation * (y - luma)``
  (Rec. 709 luma); ``gamma = gamma_range ** U(-1, 1)``, contrast and saturation
  ``1 + U(-range, range)``.
- ``lut``: a random smooth 3D LUT: a ``size`` ^ 3 lattice (``size`` 2-5: smooth by
  construction) holding ``identity + N(0, strength)`` offsets, applied by trilinear
  interpolation (a lattice of an affine map reproduces that map exactly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raiha.composites.colour import (
    REC709_LUMA,
    lab_to_srgb,
    linear_to_srgb,
    srgb_to_lab,
    srgb_to_linear,
)

CHANGES: tuple[str, ...] = ("lab_transfer", "illuminant", "tone", "lut")
MIN_LAB_STD = 1.0  # Lab units: a flat object's spread is not amplified without bound


@dataclass(frozen=True)
class LabStats:
    """Per-channel mean and standard deviation of an object's pixels in CIE Lab."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, pixels: np.ndarray) -> LabStats:
        """Statistics of sRGB pixels ``[N, 3]`` in [0, 1]."""
        lab = srgb_to_lab(pixels)  # [N, 3]
        return cls(tuple(float(v) for v in lab.mean(axis=0)), tuple(float(v) for v in lab.std(axis=0)))


def lab_transfer(pixels: np.ndarray, reference: LabStats) -> np.ndarray:
    """Give ``pixels`` ``[N, 3]`` the Lab mean and std of ``reference``."""
    lab = srgb_to_lab(pixels)  # [N, 3]
    mean, std = lab.mean(axis=0), np.maximum(lab.std(axis=0), MIN_LAB_STD)
    moved = (lab - mean) / std * np.asarray(reference.std) + np.asarray(reference.mean)
    return lab_to_srgb(moved)


def illuminant(pixels: np.ndarray, gains: Sequence[float], exposure: float) -> np.ndarray:
    """Per-channel gains and an exposure (in stops) applied in linear light."""
    scale = np.asarray(gains, dtype=np.float64) * 2.0 ** float(exposure)  # [3]
    return linear_to_srgb(srgb_to_linear(pixels) * scale)


def tone(pixels: np.ndarray, gamma: float, contrast: float, saturation: float) -> np.ndarray:
    """Gamma, contrast around mid-grey, then saturation around the Rec. 709 luma."""
    curved = np.clip(pixels, 0.0, 1.0) ** float(gamma)
    curved = 0.5 + float(contrast) * (curved - 0.5)
    luma = curved @ REC709_LUMA  # [N]
    return luma[:, None] + float(saturation) * (curved - luma[:, None])


def identity_lattice(size: int) -> np.ndarray:
    """The identity 3D LUT ``[size, size, size, 3]``: entry (r, g, b) holds (r, g, b) / (size - 1)."""
    axis = np.linspace(0.0, 1.0, size)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def apply_lut(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of the 3D LUT ``table`` ``[n, n, n, 3]`` at ``pixels`` ``[N, 3]``."""
    size = table.shape[0]
    position = np.clip(pixels, 0.0, 1.0) * (size - 1)  # [N, 3]
    low = np.minimum(np.floor(position).astype(np.int64), size - 2)  # [N, 3]
    frac = position - low  # [N, 3] in [0, 1]
    out = np.zeros_like(pixels, dtype=np.float64)
    for corner in range(8):
        offset = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        weight = np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1)  # [N]
        index = low + offset
        out += weight[:, None] * table[index[:, 0], index[:, 1], index[:, 2]]
    return out


def draw_params(
    name: str, rng: np.random.Generator, settings: Mapping[str, Any], references: Sequence[str]
) -> dict[str, Any]:
    """Draw the parameters of change ``name`` (plain JSON values).

    Args:
        settings: the change's config (ranges; see the module docstring).
        references: object keys ``lab_transfer`` may copy from (sorted, not empty for it).
    """
    if name == "lab_transfer":
        return {"reference": references[int(rng.integers(len(references)))]}
    if name == "illuminant":
        gain_range, exposure_range = float(settings["gain_range"]), float(settings["exposure_range"])
        gains = np.exp(rng.uniform(-gain_range, gain_range, size=3))
        return {"gains": [float(g) for g in gains], "exposure": float(rng.uniform(-exposure_range, exposure_range))}
    if name == "tone":
        gamma = float(settings["gamma_range"]) ** float(rng.uniform(-1.0, 1.0))
        contrast = 1.0 + float(rng.uniform(-1.0, 1.0)) * float(settings["contrast_range"])
        saturation = 1.0 + float(rng.uniform(-1.0, 1.0)) * float(settings["saturation_range"])
        return {"gamma": gamma, "contrast": contrast, "saturation": saturation}
    if name == "lut":
        size = int(settings["size"])
        offsets = rng.normal(0.0, float(settings["strength"]), size=(size, size, size, 3))
        return {"table": (identity_lattice(size) + offsets).tolist()}
    raise ValueError(f"unknown appearance change {name!r}; choose from {CHANGES}")


def apply_change(
    name: str, pixels: np.ndarray, params: Mapping[str, Any], reference_stats: Mapping[str, LabStats]
) -> np.ndarray:
    """Apply change ``name`` with ``params`` to sRGB ``pixels`` ``[N, 3]`` (result not clipped)."""
    if name == "lab_transfer":
        return lab_transfer(pixels, reference_stats[params["reference"]])
    if name == "illuminant":
        return illuminant(pixels, params["gains"], params["exposure"])
    if name == "tone":
        return tone(pixels, params["gamma"], params["contrast"], params["saturation"])
    if name == "lut":
        return apply_lut(pixels, np.asarray(params["table"], dtype=np.float64))
    raise ValueError(f"unknown appearance change {name!r}; choose from {CHANGES}")

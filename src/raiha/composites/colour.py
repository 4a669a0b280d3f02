"""Colour conversions in float64 numpy: sRGB <-> linear light <-> CIE XYZ <-> CIE Lab (D65).

All functions take and return ``[..., 3]`` arrays; sRGB and linear values are in [0, 1]
(values outside are extrapolated, not clipped: callers clip once at the end).
"""

from __future__ import annotations

import numpy as np

# sRGB (IEC 61966-2-1) primaries, D65 white
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
D65_WHITE = _RGB_TO_XYZ.sum(axis=1)  # XYZ of linear RGB (1, 1, 1): (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722])


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Decode the sRGB transfer curve (odd-symmetric for negative inputs)."""
    magnitude = np.abs(srgb)
    linear = np.where(magnitude <= 0.04045, magnitude / 12.92, ((magnitude + 0.055) / 1.055) ** 2.4)
    return np.sign(srgb) * linear


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Encode linear light with the sRGB transfer curve (odd-symmetric for negative inputs)."""
    magnitude = np.abs(linear)
    srgb = np.where(magnitude <= 0.0031308, magnitude * 12.92, 1.055 * magnitude ** (1.0 / 2.4) - 0.055)
    return np.sign(linear) * srgb


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA**3, np.cbrt(t), t / (3.0 * _DELTA**2) + 4.0 / 29.0)


def _lab_f_inverse(f: np.ndarray) -> np.ndarray:
    return np.where(f > _DELTA, f**3, 3.0 * _DELTA**2 * (f - 4.0 / 29.0))


def srgb_to_lab(srgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] ``[..., 3]`` -> CIE Lab ``[..., 3]`` (L in [0, 100])."""
    xyz = srgb_to_linear(srgb) @ _RGB_TO_XYZ.T / D65_WHITE  # [..., 3], white = 1
    fx, fy, fz = (_lab_f(xyz[..., c]) for c in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab ``[..., 3]`` -> sRGB ``[..., 3]`` (not clipped)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = np.stack([_lab_f_inverse(fx), _lab_f_inverse(fy), _lab_f_inverse(fz)], axis=-1) * D65_WHITE
    return linear_to_srgb(xyz @ _XYZ_TO_RGB.T)

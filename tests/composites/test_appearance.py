"""Known answers for every appearance change and the colour conversions under them."""

from __future__ import annotations

import numpy as np
import pytest

from raiha.composites.appearance import (
    LabStats,
    apply_lut,
    draw_params,
    identity_lattice,
    illuminant,
    lab_transfer,
    tone,
)
from raiha.composites.colour import lab_to_srgb, linear_to_srgb, srgb_to_lab, srgb_to_linear
from raiha.composites.config import DEFAULT_CHANGES


def test_lab_of_known_colours() -> None:
    lab = srgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(lab[2], [53.2408, 80.0925, 67.2032], atol=2e-3)  # sRGB red, D65
    np.testing.assert_allclose(lab[3], [53.3889, 0.0, 0.0], atol=2e-3)


def test_lab_and_linear_round_trips() -> None:
    pixels = np.random.default_rng(0).uniform(0, 1, size=(500, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(pixels)), pixels, atol=1e-9)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(pixels)), pixels, atol=1e-12)


def test_illuminant_pure_gain_gives_the_expected_pixels() -> None:
    grey = np.full((1, 3), 0.5)
    linear = ((0.5 + 0.055) / 1.055) ** 2.4  # IEC 61966-2-1: 0.214041

    def encode(value: float) -> float:
        return 1.055 * value ** (1 / 2.4) - 0.055

    out = illuminant(grey, gains=[2.0, 1.0, 0.5], exposure=0.0)
    np.testing.assert_allclose(out, [[encode(2 * linear), 0.5, encode(0.5 * linear)]], atol=1e-12)
    np.testing.assert_allclose(out, [[0.685836, 0.5, 0.360780]], atol=1e-6)
    # one stop of exposure is a gain of 2 on every channel
    np.testing.assert_allclose(illuminant(grey, [1.0, 1.0, 1.0], 1.0), [[encode(2 * linear)] * 3], atol=1e-12)
    pixels = np.random.default_rng(1).uniform(0, 1, size=(50, 3))
    np.testing.assert_allclose(illuminant(pixels, [1.0, 1.0, 1.0], 0.0), pixels, atol=1e-12)


def test_tone_curves_known_answers() -> None:
    grey = np.full((1, 3), 0.5)
    np.testing.assert_allclose(tone(grey, gamma=2.0, contrast=1.0, saturation=1.0), [[0.25] * 3])
    np.testing.assert_allclose(tone(grey, gamma=2.0, contrast=2.0, saturation=1.0), [[0.0] * 3], atol=1e-12)
    colour = np.array([[0.8, 0.4, 0.2]])
    luma = 0.2126 * 0.8 + 0.7152 * 0.4 + 0.0722 * 0.2
    np.testing.assert_allclose(tone(colour, 1.0, 1.0, 0.0), [[luma] * 3])  # saturation 0: grey
    np.testing.assert_allclose(tone(colour, 1.0, 1.0, 2.0), [[2 * c - luma for c in (0.8, 0.4, 0.2)]])
    np.testing.assert_allclose(tone(grey, 1.0, 1.0, 3.0), grey)  # greys keep their value


def test_lut_identity_and_affine_maps_are_exact() -> None:
    pixels = np.random.default_rng(2).uniform(0, 1, size=(200, 3))
    for size in (2, 3, 5):
        np.testing.assert_allclose(apply_lut(pixels, identity_lattice(size)), pixels, atol=1e-12)
    matrix = np.array([[0.9, 0.1, 0.0], [0.05, 0.8, 0.1], [0.0, 0.2, 0.7]])
    offset = np.array([0.02, -0.01, 0.05])
    table = identity_lattice(3) @ matrix.T + offset  # trilinear interpolation reproduces affine maps
    np.testing.assert_allclose(apply_lut(pixels, table), pixels @ matrix.T + offset, atol=1e-12)
    corner = np.array([[1.0, 0.0, 1.0]])
    table[2, 0, 2] = [0.3, 0.6, 0.9]  # a lattice point is returned as stored
    np.testing.assert_allclose(apply_lut(corner, table), [[0.3, 0.6, 0.9]])


def test_lab_transfer_gives_the_reference_statistics() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.uniform(0.3, 0.6, size=(400, 3))
    reference = LabStats(mean=(55.0, 8.0, -6.0), std=(4.0, 3.0, 2.0))
    moved = lab_transfer(pixels, reference)
    lab = srgb_to_lab(moved)
    np.testing.assert_allclose(lab.mean(axis=0), reference.mean, atol=1e-6)
    np.testing.assert_allclose(lab.std(axis=0), reference.std, atol=1e-6)
    np.testing.assert_allclose(lab_transfer(pixels, LabStats.of(pixels)), pixels, atol=1e-9)  # own statistics


@pytest.mark.parametrize("name", ["lab_transfer", "illuminant", "tone", "lut"])
def test_parameters_follow_the_seed(name: str) -> None:
    references = ["a_1", "b_1", "c_2"]
    first = draw_params(name, np.random.default_rng(7), DEFAULT_CHANGES[name], references)
    again = draw_params(name, np.random.default_rng(7), DEFAULT_CHANGES[name], references)
    others = [draw_params(name, np.random.default_rng(s), DEFAULT_CHANGES[name], references) for s in range(8, 12)]
    assert first == again
    assert any(other != first for other in others)

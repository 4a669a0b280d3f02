"""One composite from a real photo and an object mask, reproducible from a seed.

``make_composite(real, mask, seed, ...)`` draws a change (by the config's weights) and its
parameters from ``numpy.random.default_rng(seed)``, applies it to the foreground pixels,
clips to [0, 1] and rounds to uint8; pixels outside the mask are the real photo's bytes.
The maker tries seeds ``attempt_seed(seed, photo, object, variant, attempt)`` for
``attempt = 0, 1, ...`` until the composite is *valid*:

- visible: the mean absolute difference to the real photo over the foreground's pixels
  and channels is at least ``min_foreground_change`` (uint8 levels);
- plausible: the share of foreground pixel-channels that the change newly clips
  (0 or 255 in the composite but not in the real photo) is at most ``max_clipped_fraction``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raiha.composites.appearance import LabStats, apply_change, draw_params
from raiha.composites.config import CompositeConfig


@dataclass(frozen=True)
class Composite:
    """A composite image and how it was made."""

    image: np.ndarray  # uint8 [H, W, 3]
    change: str
    params: dict[str, Any]
    foreground_change: float  # mean |composite - real| over foreground pixel-channels, uint8 levels
    clipped_fraction: float  # share of foreground pixel-channels newly at 0 or 255

    def is_valid(self, cfg: CompositeConfig) -> bool:
        return (
            self.foreground_change >= cfg.min_foreground_change
            and self.clipped_fraction <= cfg.max_clipped_fraction
        )


def attempt_seed(seed: int, photo_index: int, object_number: int, variant: int, attempt: int) -> int:
    """The seed of one try: a 32-bit hash of (global seed, photo, object, variant, attempt)."""
    sequence = np.random.SeedSequence([int(seed), int(photo_index), int(object_number), int(variant), int(attempt)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def available_weights(cfg: CompositeConfig, has_references: bool) -> dict[str, float]:
    """The config's change weights; ``lab_transfer`` drops out when there is no other object."""
    weights = cfg.weights()
    if not has_references:
        weights.pop("lab_transfer", None)
    return weights


def make_composite(
    real: np.ndarray,
    mask: np.ndarray,
    seed: int,
    cfg: CompositeConfig,
    references: Sequence[str],
    reference_stats: Mapping[str, LabStats],
) -> Composite:
    """Change the foreground of ``real`` (uint8 [H, W, 3]) under ``mask`` (bool [H, W]) as ``seed`` draws.

    Args:
        references: object keys ``lab_transfer`` may copy statistics from (sorted).
        reference_stats: their Lab statistics.
    Raises:
        ValueError: when no change is available (only ``lab_transfer`` enabled, no reference).
    """
    weights = available_weights(cfg, bool(references))
    if not weights:
        raise ValueError("no appearance change is available: lab_transfer needs objects of other photos")
    rng = np.random.default_rng(seed)
    names = list(weights)
    probabilities = np.array([weights[name] for name in names]) / sum(weights.values())
    change = names[int(rng.choice(len(names), p=probabilities))]
    params = draw_params(change, rng, cfg.changes[change], references)
    foreground = real[mask].astype(np.float64) / 255.0  # [N, 3]
    changed = apply_change(change, foreground, params, reference_stats)  # [N, 3]
    changed_uint8 = np.rint(np.clip(changed, 0.0, 1.0) * 255.0).astype(np.uint8)
    image = real.copy()
    image[mask] = changed_uint8
    before, after = real[mask], changed_uint8
    difference = np.abs(after.astype(np.int16) - before.astype(np.int16))
    newly_clipped = ((after == 0) | (after == 255)) & ~((before == 0) | (before == 255))
    return Composite(
        image=image,
        change=change,
        params=params,
        foreground_change=float(difference.mean()),
        clipped_fraction=float(newly_clipped.mean()),
    )

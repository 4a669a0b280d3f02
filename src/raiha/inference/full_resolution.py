"""Full-resolution transfer, shared with evaluation: it lives in :mod:`raiha.models.full_resolution`."""

from __future__ import annotations

from raiha.models.full_resolution import METHODS, fit_colour_transform, transfer_to_full_resolution

__all__ = ["METHODS", "fit_colour_transform", "transfer_to_full_resolution"]

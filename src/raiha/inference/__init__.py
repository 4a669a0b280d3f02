"""Harmonize user photos with a trained checkpoint: :class:`Harmonizer` (see its module)."""

from raiha.inference.harmonizer import HarmonizationResult, Harmonizer

__all__ = ["HarmonizationResult", "Harmonizer"]

"""Scores: per-image MSE / PSNR / fMSE under a named protocol and the per-subset torchmetrics Metric."""

from __future__ import annotations

from raiha.metrics.harmonization_metric import SCORE_NAMES, HarmonizationMetrics
from raiha.metrics.per_image import QUANTIZE_MODES, per_image_scores, score_levels
from raiha.metrics.protocols import PROTOCOL_REGISTRY, PROTOCOLS, ScoringProtocol, get_protocol

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_REGISTRY",
    "QUANTIZE_MODES",
    "SCORE_NAMES",
    "HarmonizationMetrics",
    "ScoringProtocol",
    "get_protocol",
    "per_image_scores",
    "score_levels",
]

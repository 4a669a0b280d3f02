"""Scores: per-image MSE / PSNR / fMSE under a protocol and the per-subset torchmetrics Metric."""

from __future__ import annotations

from raiha.metrics.harmonization_metric import SCORE_NAMES, HarmonizationMetrics
from raiha.metrics.per_image import PROTOCOLS, QUANTIZE_MODES, per_image_scores

__all__ = ["PROTOCOLS", "QUANTIZE_MODES", "SCORE_NAMES", "HarmonizationMetrics", "per_image_scores"]

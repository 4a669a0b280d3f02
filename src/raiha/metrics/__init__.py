"""Evaluation: per-image scores, the per-subset torchmetrics Metric and the results table."""

from __future__ import annotations

from raiha.metrics.harmonization_metric import SCORE_NAMES, HarmonizationMetrics
from raiha.metrics.per_image import PROTOCOLS, QUANTIZE_MODES, per_image_scores
from raiha.metrics.results_table import (
    IHARMONY4_SUBSETS,
    PAPER_TABLE_ORDER,
    aggregate_runs,
    improvement_summary,
    print_results_table,
    results_markdown,
)

__all__ = [
    "IHARMONY4_SUBSETS",
    "PAPER_TABLE_ORDER",
    "PROTOCOLS",
    "QUANTIZE_MODES",
    "SCORE_NAMES",
    "HarmonizationMetrics",
    "aggregate_runs",
    "improvement_summary",
    "per_image_scores",
    "print_results_table",
    "results_markdown",
]

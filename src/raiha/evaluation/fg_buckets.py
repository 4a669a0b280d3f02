"""Foreground-ratio buckets (iS2AM's 0-5 %, 5-15 %, 15-100 %): scores of small, medium and large objects.

An image whose foreground ratio ``r`` (share of mask pixels above 0.5 at the scoring size)
satisfies ``edges[i] <= r < edges[i + 1]`` falls in bucket ``i``; the last bucket also
takes ``r == edges[-1]`` (a mask covering the whole image). So 0.05 is in "5-15%", 0.15
in "15-100%", as iS2AM's ``if ratio < 0.05 ... elif ratio < 0.15`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raiha.evaluation.per_image_rows import summarize_rows

DEFAULT_EDGES: tuple[float, ...] = (0.0, 0.05, 0.15, 1.0)


def check_edges(edges: Sequence[float]) -> list[float]:
    """Edges as floats; a ValueError unless they rise strictly from 0 to 1 with at least 2 values."""
    values = [float(edge) for edge in edges]
    if len(values) < 2 or values[0] != 0.0 or values[-1] != 1.0 or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"eval.fg_ratio_edges {values} must rise strictly from 0 to 1, e.g. [0, 0.05, 0.15, 1]")
    return values


def _percent(value: float) -> str:
    return f"{100 * value:g}"


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``["0-5%", "5-15%", "15-100%"]`` for the default edges."""
    edges = check_edges(edges)
    return [f"{_percent(low)}-{_percent(high)}%" for low, high in zip(edges, edges[1:])]


def bucket_of(ratio: float, edges: Sequence[float]) -> int:
    """Index of the bucket holding ``ratio`` (see the module docstring for the boundaries)."""
    edges = check_edges(edges)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"foreground ratio {ratio} is outside [0, 1]")
    for index in range(len(edges) - 1):
        if ratio < edges[index + 1]:
            return index
    return len(edges) - 2


def bucket_results(
    rows: Sequence[Mapping[str, Any]], subset_names: Sequence[str], edges: Sequence[float] = DEFAULT_EDGES
) -> dict[str, Any]:
    """``{"edges", "buckets": {label: {"subsets": {...}, "all": {...}}}}`` from per-image rows
    (each with ``subset``, ``fg_ratio``, ``mse``, ``psnr``, ``fmse``); empty buckets are left out."""
    labels = bucket_labels(edges)
    grouped: dict[str, list[Mapping[str, Any]]] = {label: [] for label in labels}
    for row in rows:
        grouped[labels[bucket_of(float(row["fg_ratio"]), edges)]].append(row)
    return {
        "edges": check_edges(edges),
        "buckets": {label: summarize_rows(members, subset_names) for label, members in grouped.items() if members},
    }


__all__ = ["DEFAULT_EDGES", "bucket_labels", "bucket_of", "bucket_results", "check_edges"]

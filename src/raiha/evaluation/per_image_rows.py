"""Per-image result rows: their aggregates and the ``per_image.csv`` written next to ``metrics.json``.

A row is one scored image: ``name`` (the composite's path relative to the dataset root),
``subset``, ``fg_ratio``, ``reference_seed`` and ``reference`` (RAHarmony4 runs; empty
otherwise), ``mse``, ``psnr``, ``fmse`` and, when the composite baseline was scored too,
``composite_mse``, ``composite_psnr``, ``composite_fmse``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from raiha.io.atomic_io import atomic_write_text

PER_IMAGE_FILE = "per_image.csv"
CSV_COLUMNS: tuple[str, ...] = (
    "name", "subset", "fg_ratio", "reference_seed", "reference", "mse", "psnr", "fmse",
    "composite_mse", "composite_psnr", "composite_fmse",
)  # fmt: skip
SCORES: tuple[str, ...] = ("mse", "psnr", "fmse")


def _summary(rows: Sequence[Mapping[str, Any]], prefix: str = "") -> dict[str, Any]:
    """Image means; NaN fMSE (empty masks) is left out of the fMSE mean (as HarmonizationMetrics)."""
    summary: dict[str, Any] = {"n": len(rows)}
    for score in SCORES:
        values = [float(row[prefix + score]) for row in rows]
        if score == "fmse":
            values = [value for value in values if not math.isnan(value)]
        summary[score] = math.fsum(values) / len(values) if values else math.nan
    return summary


def summarize_rows(
    rows: Sequence[Mapping[str, Any]], subset_names: Sequence[str], prefix: str = ""
) -> dict[str, Any]:
    """``{"subsets": {name: {"n", "mse", "psnr", "fmse"}}, "all": {...}}`` (image-weighted "All").

    ``prefix="composite_"`` summarizes the composite baseline's columns instead.
    """
    if not rows:
        raise ValueError("no per-image rows to summarize (no image was scored)")
    subsets = {}
    for name in subset_names:
        members = [row for row in rows if row["subset"] == name]
        if members:
            subsets[name] = _summary(members, prefix)
    return {"subsets": subsets, "all": _summary(rows, prefix)}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision: the rows re-aggregate to metrics.json exactly
    return str(value)


def write_per_image_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (columns :data:`CSV_COLUMNS`, missing cells empty) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
    return atomic_write_text(path, buffer.getvalue())


def read_per_image_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``per_image.csv``, numbers as floats (empty cells as None)."""
    numeric = {"fg_ratio", *SCORES, *(f"composite_{score}" for score in SCORES)}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {key: (float(value) if key in numeric and value != "" else (value if value != "" else None))
         for key, value in row.items()}
        for row in rows
    ]  # fmt: skip


def table_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns and data for a logger table (W&B ``wandb.Table``)."""
    return list(CSV_COLUMNS), [[row.get(column) for column in CSV_COLUMNS] for row in rows]


__all__ = [
    "CSV_COLUMNS",
    "PER_IMAGE_FILE",
    "read_per_image_csv",
    "summarize_rows",
    "table_rows",
    "write_per_image_csv",
]

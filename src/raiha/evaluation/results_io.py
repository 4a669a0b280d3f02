"""Write ``metrics.json`` and ``per_image.csv`` and print the results in the paper's table layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raiha.evaluation.fg_buckets import DEFAULT_EDGES, bucket_results
from raiha.evaluation.per_image_rows import (
    PER_IMAGE_FILE,
    summarize_rows,
    table_rows,
    write_per_image_csv,
)
from raiha.evaluation.results_table import improvement_summary, print_results_table, results_rows
from raiha.io.atomic_io import atomic_write_json
from raiha.metrics.protocols import PROTOCOL_REGISTRY

TEST_RESULTS_FILE = "test_results.json"  # the last test's results, written by global rank zero


class MetricsRecord(dict):
    """The ``metrics.json`` record (a plain dict) carrying its per-image rows as an attribute
    (written to ``per_image.csv``, not into the JSON)."""

    per_image_rows: list[dict[str, Any]]

    def __init__(self, *args: Any, per_image_rows: Sequence[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_image_rows = list(per_image_rows or [])


def build_metrics_record(
    *,
    protocol: str,
    dataset: str,
    model: dict[str, Any],
    composite: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    per_image_rows: Sequence[dict[str, Any]] | None = None,
    subset_names: Sequence[str] | None = None,
    fg_ratio_edges: Sequence[float] | None = None,
) -> MetricsRecord:
    """``{"protocol", "protocol_conventions", "dataset", "subsets", "all"}`` for the model, the
    composite baseline, and (with per-image rows) the foreground-ratio buckets of both."""
    record = MetricsRecord(per_image_rows=per_image_rows)
    record.update({
        "protocol": protocol,
        "protocol_conventions": PROTOCOL_REGISTRY[protocol].describe() if protocol in PROTOCOL_REGISTRY else None,
        "dataset": dataset,
        "subsets": model["subsets"],
        "all": model["all"],
    })
    if per_image_rows:
        names = list(subset_names or dict.fromkeys(row["subset"] for row in per_image_rows))
        edges = list(fg_ratio_edges or DEFAULT_EDGES)
        record["fg_ratio_buckets"] = bucket_results(per_image_rows, names, edges)
        if all(row.get("composite_mse") is not None for row in per_image_rows):
            baseline_rows = [
                {**row, **{key: row[f"composite_{key}"] for key in ("mse", "psnr", "fmse")}} for row in per_image_rows
            ]
            record["fg_ratio_buckets_composite"] = bucket_results(baseline_rows, names, edges)
    if composite is not None:
        record["composite_baseline"] = {"subsets": composite["subsets"], "all": composite["all"]}
        record["improvement_over_composite"] = improvement_summary(composite, model)
    if extra:
        record.update(extra)
    return record


def record_from_rows(
    rows: Sequence[dict[str, Any]],
    *,
    protocol: str,
    dataset: str,
    subset_names: Sequence[str],
    fg_ratio_edges: Sequence[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> MetricsRecord:
    """The record of one scoring pass over per-image rows (model and ``composite_*`` columns)."""
    with_baseline = all(row.get("composite_mse") is not None for row in rows)
    return build_metrics_record(
        protocol=protocol, dataset=dataset, model=summarize_rows(rows, subset_names),
        composite=summarize_rows(rows, subset_names, prefix="composite_") if with_baseline else None,
        extra=extra, per_image_rows=rows, subset_names=subset_names, fg_ratio_edges=fg_ratio_edges,
    )  # fmt: skip


def report_results(
    output_dir: str | Path, record: dict[str, Any], *, subset_order: list[str] | None, title: str
) -> Path:
    """Write ``<output_dir>/metrics.json`` (and ``per_image.csv`` when the record has rows)
    atomically and print the tables; returns the JSON path."""
    path = atomic_write_json(Path(output_dir) / "metrics.json", dict(record))
    rows_per_image = getattr(record, "per_image_rows", None)
    if rows_per_image:
        write_per_image_csv(Path(output_dir) / PER_IMAGE_FILE, rows_per_image)
    rows = {}
    if "composite_baseline" in record:
        rows["Composite"] = record["composite_baseline"]
    rows["Model"] = {"subsets": record["subsets"], "all": record["all"]}
    print_results_table(rows, subset_order=subset_order, title=title)
    improvement = record.get("improvement_over_composite")
    if improvement:
        parts = [
            f"{name}: MSE {100 * change['mse_rel_change']:+.1f}%, fMSE {100 * change['fmse_rel_change']:+.1f}%, "
            f"PSNR {change['psnr_delta']:+.2f} dB"
            for name, change in improvement.items()
        ]
        verdict = "yes" if all(change["beats_baseline"] for change in improvement.values()) else "NO"
        print("model vs composite baseline: " + "; ".join(parts))
        print(f"beats the composite baseline on every subset: {verdict}")
    buckets = record.get("fg_ratio_buckets")
    if buckets:
        print_results_table(
            buckets["buckets"], subset_order=subset_order, title=f"{title}: model by foreground ratio"
        )
    return path


def log_results_tables(loggers: list[Any], record: dict[str, Any], *, subset_order: list[str] | None) -> int:
    """Send the paper-layout table (composite and model rows) and the attention accuracy to
    every logger that takes tables (W&B: ``wandb.Table`` under ``test/results_table``).
    Returns how many loggers took it. The same numbers are in ``metrics.json`` for offline users."""
    rows_by_method = {}
    if "composite_baseline" in record:
        rows_by_method["Composite"] = record["composite_baseline"]
    rows_by_method["Model"] = {"subsets": record["subsets"], "all": record["all"]}
    header, rows = results_rows(rows_by_method, subset_order)
    sent = 0
    for logger in loggers:
        if not hasattr(logger, "log_table"):
            continue
        logger.log_table(key="test/results_table", columns=header, data=rows)
        if getattr(record, "per_image_rows", None):
            columns, data = table_rows(record.per_image_rows)
            logger.log_table(key="test/per_image", columns=columns, data=data)
        if record.get("attention"):
            logger.log_metrics({f"test/attention/{key}": float(value) for key, value in record["attention"].items()})
        sent += 1
    return sent

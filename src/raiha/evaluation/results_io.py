"""Write ``metrics.json`` and print the results in the paper's table layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raiha.evaluation.results_table import improvement_summary, print_results_table, results_rows
from raiha.io.atomic_io import atomic_write_json

TEST_RESULTS_FILE = "test_results.json"  # the last test's results, written by global rank zero


def build_metrics_record(
    *, protocol: str, dataset: str, model: dict[str, Any], composite: dict[str, Any] | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"protocol", "dataset", "subsets", "all"}`` for the model, plus the composite baseline."""
    record: dict[str, Any] = {
        "protocol": protocol,
        "dataset": dataset,
        "subsets": model["subsets"],
        "all": model["all"],
    }
    if composite is not None:
        record["composite_baseline"] = {"subsets": composite["subsets"], "all": composite["all"]}
        record["improvement_over_composite"] = improvement_summary(composite, model)
    if extra:
        record.update(extra)
    return record


def report_results(
    output_dir: str | Path, record: dict[str, Any], *, subset_order: list[str] | None, title: str
) -> Path:
    """Write ``<output_dir>/metrics.json`` atomically and print the table; returns the JSON path."""
    path = atomic_write_json(Path(output_dir) / "metrics.json", record)
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
        if record.get("attention"):
            logger.log_metrics({f"test/attention/{key}": float(value) for key, value in record["attention"].items()})
        sent += 1
    return sent

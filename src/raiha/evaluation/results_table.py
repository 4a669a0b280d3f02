"""The paper's results table (Table I layout): methods x subsets x (MSE, PSNR, fMSE), "All" last.

A method's results are the dict returned by ``HarmonizationMetrics.compute()``:
``{"subsets": {name: {"n", "mse", "psnr", "fmse"}}, "all": {...}}``. A subset entry may
also carry ``"<metric>_std"`` (see :func:`aggregate_runs`); the table then shows
``mean ± std``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

IHARMONY4_SUBSETS: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
PAPER_TABLE_ORDER: tuple[str, ...] = ("HAdobe5k", "HFlickr", "HCOCO", "Hday2night")
ALL_COLUMN = "All"
METRIC_LABELS: dict[str, str] = {"mse": "MSE↓", "psnr": "PSNR↑", "fmse": "fMSE↓", "n": "N"}
LOWER_IS_BETTER: frozenset[str] = frozenset({"mse", "fmse"})
MISSING = "-"


def _groups(results: Mapping[str, Any], label: str = "results") -> dict[str, Mapping[str, Any]]:
    """Subset name -> scores, plus "All", for one method's results dict."""
    if "subsets" not in results or "all" not in results:
        raise ValueError(
            f"{label} must look like HarmonizationMetrics.compute() output with keys 'subsets' "
            f"and 'all', got keys {sorted(results)}"
        )
    return {**results["subsets"], ALL_COLUMN: results["all"]}


def resolve_subset_order(
    results_by_method: Mapping[str, Mapping[str, Any]], subset_order: Sequence[str] | None = None
) -> list[str]:
    """Columns of the table: ``subset_order`` if given, else the iHarmony4 subsets present (in
    :data:`IHARMONY4_SUBSETS` order) then any other subset in first-seen order; never "All"."""
    if subset_order is not None:
        return [name for name in subset_order if name != ALL_COLUMN]
    seen: list[str] = []
    for method, results in results_by_method.items():
        for name in _groups(results, f"results of method {method!r}"):
            if name != ALL_COLUMN and name not in seen:
                seen.append(name)
    known = [name for name in IHARMONY4_SUBSETS if name in seen]
    return known + [name for name in seen if name not in known]


def format_score(scores: Mapping[str, Any] | None, metric: str) -> str:
    """``12.34``, ``12.34 ± 0.56`` when ``<metric>_std`` is present, or "-" when missing/NaN."""
    if scores is None or metric not in scores or scores[metric] is None:
        return MISSING
    value = float(scores[metric])
    if math.isnan(value):
        return MISSING
    if metric == "n":
        return str(int(value))
    text = f"{value:.2f}"
    std = scores.get(f"{metric}_std")
    if std is not None and not math.isnan(float(std)):
        text += f" ± {float(std):.2f}"
    return text


def results_rows(
    results_by_method: Mapping[str, Mapping[str, Any]],
    subset_order: Sequence[str] | None = None,
    metrics: Sequence[str] = ("mse", "psnr", "fmse"),
) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows shared by the Markdown and rich renderings."""
    columns = [*resolve_subset_order(results_by_method, subset_order), ALL_COLUMN]
    header = ["Method"] + [
        f"{column} {METRIC_LABELS.get(metric, metric)}" for column in columns for metric in metrics
    ]
    rows: list[list[str]] = []
    for method, results in results_by_method.items():
        groups = _groups(results, f"results of method {method!r}")
        rows.append(
            [method]
            + [format_score(groups.get(column), metric) for column in columns for metric in metrics]
        )
    return header, rows


def results_markdown(
    results_by_method: Mapping[str, Mapping[str, Any]],
    subset_order: Sequence[str] | None = None,
    metrics: Sequence[str] = ("mse", "psnr", "fmse"),
) -> str:
    """A Markdown table: one row per method (in mapping order), subset columns then "All".

    Args:
        results_by_method: method name -> ``HarmonizationMetrics.compute()`` output.
        subset_order: subset columns in this order (default: see :func:`resolve_subset_order`;
            pass :data:`PAPER_TABLE_ORDER` for the paper's column order).
        metrics: which scores per subset, among "mse", "psnr", "fmse", "n".
    """
    header, rows = results_rows(results_by_method, subset_order, metrics)
    alignment = ["---"] + ["---:"] * (len(header) - 1)
    lines = [f"| {' | '.join(cells)} |" for cells in (header, alignment, *rows)]
    return "\n".join(lines) + "\n"


def print_results_table(
    results_by_method: Mapping[str, Mapping[str, Any]],
    subset_order: Sequence[str] | None = None,
    title: str | None = None,
    metrics: Sequence[str] = ("mse", "psnr", "fmse"),
    console: Console | None = None,
) -> None:
    """Print the table with rich (plain text when the output is not a terminal)."""
    header, rows = results_rows(results_by_method, subset_order, metrics)
    table = Table(title=title)
    table.add_column(header[0], justify="left", no_wrap=True)
    for column_title in header[1:]:
        table.add_column(column_title, justify="right")
    for cells in rows:
        table.add_row(*cells)
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: wide enough for every column
            console = Console(width=max(120, 16 * len(header)))
    console.print(table)


def _compare(baseline_scores: Mapping[str, Any], model_scores: Mapping[str, Any]) -> dict[str, Any]:
    """Relative change of mse/fmse, delta of psnr, and whether the model wins on all three."""
    comparison: dict[str, Any] = {}
    for metric in ("mse", "fmse"):
        base, model = float(baseline_scores[metric]), float(model_scores[metric])
        comparison[f"{metric}_rel_change"] = (model - base) / base if base != 0 else math.nan
    comparison["psnr_delta"] = float(model_scores["psnr"]) - float(baseline_scores["psnr"])
    comparison["beats_baseline"] = bool(
        model_scores["mse"] < baseline_scores["mse"]
        and model_scores["fmse"] < baseline_scores["fmse"]
        and comparison["psnr_delta"] > 0
    )
    return comparison


def improvement_summary(
    baseline: Mapping[str, Any], model: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Model vs baseline (e.g. the composite) per shared subset and for "All".

    Returns:
        ``{name: {"mse_rel_change", "fmse_rel_change", "psnr_delta", "beats_baseline"}}``
        where rel_change = (model - baseline) / baseline (negative is better) and
        beats_baseline means lower MSE, lower fMSE and higher PSNR.
    """
    baseline_groups, model_groups = _groups(baseline, "baseline"), _groups(model, "model")
    return {
        name: _compare(baseline_groups[name], model_groups[name])
        for name in baseline_groups
        if name in model_groups
    }


def aggregate_runs(runs: Sequence[Mapping[str, Any]], ddof: int = 0) -> dict[str, Any]:
    """Mean and std over repeated runs (e.g. 5 reference seeds on RAHarmony4).

    Each score becomes the mean over runs, with ``"<metric>_std"`` beside it (``ddof=0``
    like ``np.std``); "n" is taken from the first run. Only subsets present in every run
    are kept.
    """
    if not runs:
        raise ValueError("aggregate_runs needs at least one run's results")
    groups_per_run = [_groups(run, f"run {position}") for position, run in enumerate(runs)]
    shared = [
        name for name in groups_per_run[0] if all(name in groups for groups in groups_per_run)
    ]
    aggregated: dict[str, dict[str, Any]] = {}
    for name in shared:
        summary: dict[str, Any] = {"n": groups_per_run[0][name].get("n"), "runs": len(runs)}
        for metric in ("mse", "psnr", "fmse"):
            values = [float(groups[name][metric]) for groups in groups_per_run]
            mean = sum(values) / len(values)
            denominator = len(values) - ddof
            variance = (
                sum((v - mean) ** 2 for v in values) / denominator if denominator > 0 else math.nan
            )
            summary[metric], summary[f"{metric}_std"] = mean, math.sqrt(variance)
        aggregated[name] = summary
    all_scores = aggregated.pop(ALL_COLUMN)
    run_info = {key: value for key, value in runs[0].items() if key not in ("subsets", "all")}
    return {**run_info, "subsets": aggregated, "all": all_scores}


__all__ = [
    "ALL_COLUMN",
    "IHARMONY4_SUBSETS",
    "PAPER_TABLE_ORDER",
    "aggregate_runs",
    "format_score",
    "improvement_summary",
    "print_results_table",
    "resolve_subset_order",
    "results_markdown",
    "results_rows",
]

"""A sweep's runs as the paper's Table III: find every ``metrics.json``, group the runs by
experiment, average over training seeds with :func:`~raiha.evaluation.results_table.aggregate_runs`
(mean and population std) and lay the rows out in Table III's order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from raiha.evaluation.results_table import aggregate_runs

TABLE_III_ORDER = (
    "ablation_no_aug",
    "ablation_no_retrieval",
    "ablation_sgf",
    "ablation_eps_a_07_08",
    "ablation_eps_a_08_09",
    "non_reference",
    "raiha",
)
ROW_LABELS = {
    "ablation_no_aug": "Raiha w/o augmented refs",
    "ablation_no_retrieval": "Raiha w/o retrieved refs",
    "ablation_sgf": "Raiha w/o SGF",
    "ablation_eps_a_07_08": "Raiha, inconsistent illumination 0.7 <= eps_a < 0.8",
    "ablation_eps_a_08_09": "Raiha, inconsistent illumination 0.8 <= eps_a < 0.9",
    "non_reference": "Raiha w/o reference (trained and tested)",
    "raiha": "Raiha",
}
METRICS = ("mse", "psnr", "fmse")


def find_runs(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """Every ``metrics.json`` below ``folders``, with its path under ``"_path"``."""
    runs = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("metrics.json")):
            record = json.loads(path.read_text())
            record["_path"] = str(path)
            runs.append(record)
    return runs


def base_name(name: str) -> str:
    """The ablation an experiment name stands for (``raiha_synthetic`` -> ``raiha``)."""
    return name.removesuffix("_synthetic")


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{experiment: {"runs", "seeds", "setting", "all": {metric, metric_std}, "subsets", "paths"}}``."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(str(run.get("experiment") or "unnamed"), []).append(run)
    summary: dict[str, dict[str, Any]] = {}
    for name, members in grouped.items():
        scores = aggregate_runs(
            [{"subsets": m["subsets"], "all": m["all"]} for m in members], ddof=0
        )
        summary[name] = {
            "runs": len(members),
            "seeds": [m.get("seed") for m in members],
            "setting": members[0].get("setting"),
            "all": scores["all"],
            "subsets": scores["subsets"],
            "paths": [m["_path"] for m in members],
        }
    return summary


def table_order(names: Iterable[str]) -> list[str]:
    """Table III's row order for the known ablations, then the rest by name."""
    rank = {name: position for position, name in enumerate(TABLE_III_ORDER)}
    return sorted(names, key=lambda name: (rank.get(base_name(name), len(rank)), name))


def _cell(scores: dict[str, float], metric: str, runs: int) -> str:
    value = f"{scores[metric]:.2f}"
    return f"{value} ± {scores[f'{metric}_std']:.2f}" if runs > 1 else value


def table_markdown(summary: dict[str, dict[str, Any]]) -> str:
    """Table III layout: one row per experiment; All, then every subset."""
    names = table_order(summary)
    subsets = list(dict.fromkeys(s for name in names for s in summary[name]["subsets"]))
    header = ["Method", "runs"] + [f"{group} {m.upper()}" for group in ["All", *subsets] for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        row = summary[name]
        label = ROW_LABELS.get(base_name(name), name)
        cells = [f"{label} (`{name}`)", str(row["runs"])]
        for group in ["all", *subsets]:
            scores = row["all"] if group == "all" else row["subsets"].get(group)
            cells += [_cell(scores, m, row["runs"]) if scores else "-" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""``python -m raiha.collect DIR [DIR ...] [--out PREFIX]``: a sweep's runs as the paper's Table III.

Finds every ``metrics.json`` under the given folders (a multirun folder holds one per
job), groups the runs by their ``experiment`` name, averages over training seeds (mean
and std) and writes ``<PREFIX>.md`` and ``<PREFIX>.json``; the Markdown table is also
printed. Rows follow Table III's order where the names are known.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from raiha.io.atomic_io import atomic_write_json, atomic_write_text

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


def _base_name(name: str) -> str:
    return name.removesuffix("_synthetic")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if len(values) > 1 else 0.0
    return mean, std


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{experiment: {"runs", "seeds", "all": {metric, metric_std}, "subsets": {...}}}``."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(str(run.get("experiment") or "unnamed"), []).append(run)
    summary: dict[str, dict[str, Any]] = {}
    for name, members in grouped.items():
        groups = {"all": [m["all"] for m in members]}
        for subset in members[0]["subsets"]:
            if all(subset in m["subsets"] for m in members):
                groups[subset] = [m["subsets"][subset] for m in members]
        scores: dict[str, dict[str, float]] = {}
        for group, values in groups.items():
            scores[group] = {}
            for metric in METRICS:
                mean, std = _mean_std([float(v[metric]) for v in values])
                scores[group][metric], scores[group][f"{metric}_std"] = mean, std
        summary[name] = {
            "runs": len(members),
            "seeds": [m.get("seed") for m in members],
            "setting": members[0].get("setting"),
            "all": scores.pop("all"),
            "subsets": scores,
            "paths": [m["_path"] for m in members],
        }
    return summary


def _order(names: Iterable[str]) -> list[str]:
    rank = {name: position for position, name in enumerate(TABLE_III_ORDER)}
    return sorted(names, key=lambda name: (rank.get(_base_name(name), len(rank)), name))


def _cell(scores: dict[str, float], metric: str, runs: int) -> str:
    value = f"{scores[metric]:.2f}"
    return f"{value} ± {scores[f'{metric}_std']:.2f}" if runs > 1 else value


def table_markdown(summary: dict[str, dict[str, Any]]) -> str:
    """Table III layout: one row per experiment; All, then every subset."""
    names = _order(summary)
    subsets = list(dict.fromkeys(s for name in names for s in summary[name]["subsets"]))
    header = ["Method", "runs"] + [f"{group} {m.upper()}" for group in ["All", *subsets] for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        row = summary[name]
        label = ROW_LABELS.get(_base_name(name), name)
        cells = [f"{label} (`{name}`)", str(row["runs"])]
        for group in ["all", *subsets]:
            scores = row["all"] if group == "all" else row["subsets"].get(group)
            cells += [_cell(scores, m, row["runs"]) if scores else "-" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def collect(folders: Sequence[Path], out_prefix: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Build the table from ``folders``; write ``<out_prefix>.md`` / ``.json`` when given."""
    runs = find_runs(folders)
    if not runs:
        raise FileNotFoundError(f"no metrics.json under {[str(f) for f in folders]}")
    summary = summarise(runs)
    markdown = table_markdown(summary)
    if out_prefix is not None:
        atomic_write_text(out_prefix.with_suffix(".md"), markdown)
        atomic_write_json(out_prefix.with_suffix(".json"), summary)
    return markdown, summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="run or multirun folders")
    parser.add_argument("--out", type=Path, default=None, help="write PREFIX.md and PREFIX.json")
    args = parser.parse_args(argv)
    markdown, _ = collect(args.folders, args.out)
    print(markdown)


if __name__ == "__main__":
    main()

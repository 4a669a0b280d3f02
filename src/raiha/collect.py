"""``python -m raiha.collect DIR [DIR ...] [--out PREFIX]``: a sweep's runs as the paper's Table III.

Finds every ``metrics.json`` under the given folders (a multirun folder holds one per
job), groups the runs by their ``experiment`` name, averages over training seeds (mean
and std) and writes ``<PREFIX>.md`` and ``<PREFIX>.json``; the Markdown table is also
printed. Rows follow Table III's order where the names are known
(:mod:`raiha.evaluation.sweep_table`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raiha.evaluation.sweep_table import find_runs, summarise, table_markdown
from raiha.io.atomic_io import atomic_write_json, atomic_write_text


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

"""Send the retrieval's report to the run: reference-list counts and, on a world with
ground truth (the synthetic one), precision and recall of the lists.

Rank zero at fit start writes ``<output_dir>/retrieval_report.json`` (offline users
lose nothing), logs the numbers as ``retrieval/<split>/<name>`` scalars to every
logger, and on W&B also puts the whole JSON into the run summary and uploads the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from raiha.io.atomic_io import atomic_write_json

log = logging.getLogger(__name__)

REPORT_FILE = "retrieval_report.json"


def list_counts(lists: dict[str, list[str]]) -> dict[str, float]:
    """Composites, those without a reference, and references per composite of one split."""
    sizes = [len(refs) for refs in lists.values()]
    return {
        "composites": len(sizes),
        "empty": sum(1 for n in sizes if n == 0),
        "mean_refs": round(sum(sizes) / len(sizes), 3) if sizes else 0.0,
    }


def build_retrieval_report(datamodule: Any) -> dict[str, Any] | None:
    """The report of ``datamodule``'s reference artifacts (None without references)."""
    artifacts = getattr(datamodule, "reference_artifacts", None)
    if artifacts is None:
        return None
    report: dict[str, Any] = {"sources": dict(artifacts.sources), "splits": {}}
    for split, lists in artifacts.lists.items():
        if lists:
            report["splits"][split] = list_counts(lists)
    if artifacts.pipeline_summary is not None:
        report["pipeline"] = artifacts.pipeline_summary
    root = Path(datamodule.dataset_root())
    from raiha.world.ground_truth import GROUND_TRUTH_FILE, load_ground_truth

    list_files = {
        split: Path(source) for split, source in artifacts.sources.items() if Path(source).is_file()
    }
    if (root / GROUND_TRUTH_FILE).is_file() and list_files:
        from raiha.retrieval.ground_truth_score import score_reference_lists

        # the cap the lists were built with (for recall_at_cap), from the pipeline's settings key
        cap = ((artifacts.pipeline_summary or {}).get("key") or {}).get("rule", {}).get("max_refs")
        score = score_reference_lists(list_files, load_ground_truth(root), cap=cap)
        report["ground_truth"] = {split: result["all"] for split, result in score.items()}
    return report


def report_scalars(report: dict[str, Any]) -> dict[str, float]:
    """``retrieval/<split>/<name>`` for every number of the counts and the ground-truth score."""
    scalars: dict[str, float] = {}
    for block in ("splits", "ground_truth"):
        for split, values in report.get(block, {}).items():
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    scalars[f"retrieval/{split}/{name}"] = float(value)
    return scalars


class RetrievalReportCallback(L.Callback):
    """Write and log the retrieval report once per run (rank zero, at fit start)."""

    def __init__(self, output_dir: str | Path) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = build_retrieval_report(trainer.datamodule)
        if report is None:
            return
        path = atomic_write_json(self.output_dir / REPORT_FILE, report)
        scalars = report_scalars(report)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=0)
            if isinstance(logger, WandbLogger):
                logger.experiment.summary["retrieval_report"] = report
                logger.experiment.save(str(path), base_path=str(self.output_dir), policy="now")
        log.info("retrieval report written to %s: %s", path, scalars)

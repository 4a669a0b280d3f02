"""The per-run reports: system figures per epoch and the retrieval report reach the loggers
(CSV here) and the run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from raiha.data.references.wiring import ReferenceArtifacts
from raiha.training.callbacks.retrieval_report import (
    REPORT_FILE,
    RetrievalReportCallback,
    list_counts,
    report_scalars,
)
from raiha.training.callbacks.system_metrics import SystemMetricsCallback, peak_host_memory_mb


class _TinyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Conv2d(3, 3, 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch["composite"]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_system_metrics_are_logged_every_epoch(tmp_path: Path) -> None:
    batches = [{"composite": torch.randn(3, 3, 8, 8)} for _ in range(4)]  # 12 images an epoch
    trainer = L.Trainer(max_epochs=2, logger=CSVLogger(tmp_path, name="csv", version=""), callbacks=[SystemMetricsCallback()],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(_TinyModule(), DataLoader(batches, batch_size=None))
    rows = [row for row in _read_csv(tmp_path / "csv" / "metrics.csv") if row.get("system/epoch_seconds")]
    assert len(rows) == 2
    for row in rows:
        seconds = float(row["system/epoch_seconds"])
        assert float(row["system/train_images_per_second"]) == pytest.approx(12 / seconds, rel=0.2)
        assert 0 < float(row["system/peak_host_memory_mb"]) <= peak_host_memory_mb()


def test_retrieval_report_is_written_and_logged(tmp_path: Path) -> None:
    lists = {"a.jpg": ["r1.jpg", "r2.jpg"], "b.jpg": [], "c.jpg": ["r3.jpg"]}
    assert list_counts(lists) == {"composites": 3, "empty": 1, "mean_refs": 1.0}
    artifacts = ReferenceArtifacts(lists={"test": lists}, sources={"test": "lists/IHD_test.jsonl"},
                                   pipeline_summary={"seconds": 1.5})  # fmt: skip
    datamodule = SimpleNamespace(reference_artifacts=artifacts, dataset_root=lambda: tmp_path)
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = SimpleNamespace(datamodule=datamodule, loggers=[logger])
    RetrievalReportCallback(tmp_path / "run").on_fit_start(trainer, None)  # type: ignore[arg-type]
    logger.save()
    report = json.loads((tmp_path / "run" / REPORT_FILE).read_text())
    assert report["splits"]["test"] == {"composites": 3, "empty": 1, "mean_refs": 1.0}
    assert report["pipeline"] == {"seconds": 1.5} and "ground_truth" not in report  # no ground truth here
    row = _read_csv(tmp_path / "csv" / "metrics.csv")[0]
    assert float(row["retrieval/test/empty"]) == 1.0 and float(row["retrieval/test/mean_refs"]) == 1.0
    assert report_scalars({"ground_truth": {"test": {"precision_micro": 0.9, "errors": {}}}}) == {
        "retrieval/test/precision_micro": 0.9
    }
    # without references there is nothing to report
    empty = SimpleNamespace(datamodule=SimpleNamespace(reference_artifacts=None), loggers=[logger])
    RetrievalReportCallback(tmp_path / "none").on_fit_start(empty, None)  # type: ignore[arg-type]
    assert not (tmp_path / "none").exists()

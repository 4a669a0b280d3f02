"""Issue 17 item 7: one ``metrics.csv`` continued across resumes, whatever stopped the run."""

from __future__ import annotations

import csv
from pathlib import Path

import hydra

from raiha.training.continued_csv_logger import ContinuedCSVLogger
from tests.hydra_helpers import compose_config


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _log(folder: Path, steps: range, value: float, extra_key: str | None = None) -> None:
    logger = ContinuedCSVLogger(str(folder), name="csv", version="")
    for step in steps:
        metrics = {"train/loss": value + step}
        if extra_key:
            metrics[extra_key] = 1.0
        logger.log_metrics(metrics, step=step)
    logger.save()


def test_a_resumed_run_keeps_the_rows_before_the_interruption(tmp_path: Path) -> None:
    _log(tmp_path, range(0, 50, 10), value=0.0)  # interrupted after step 40; last checkpoint at 20
    _log(tmp_path, range(30, 70, 10), value=100.0, extra_key="val/mse")  # replays 30, 40; a new column
    rows = _rows(tmp_path / "csv" / "metrics.csv")
    assert [int(row["step"]) for row in rows] == [0, 10, 20, 30, 40, 50, 60]
    assert [float(row["train/loss"]) for row in rows] == [0, 10, 20, 130, 140, 150, 160]
    assert rows[0]["val/mse"] == "" and rows[-1]["val/mse"] == "1.0"


def test_a_run_resumed_at_its_end_appends(tmp_path: Path) -> None:
    _log(tmp_path, range(0, 3), value=0.0)
    _log(tmp_path, range(3, 5), value=0.0)
    assert [int(row["step"]) for row in _rows(tmp_path / "csv" / "metrics.csv")] == [0, 1, 2, 3, 4]


def test_the_default_logger_config_uses_it(tmp_path: Path) -> None:
    cfg = compose_config("train", [], output_dir=tmp_path / "out", data_dir=tmp_path)
    logger = hydra.utils.instantiate(cfg.logger.csv)
    assert isinstance(logger, ContinuedCSVLogger) and Path(logger.log_dir) == tmp_path / "out" / "csv"


def test_rows_the_resumed_run_does_not_replay_survive(tmp_path: Path) -> None:
    """A resumed run re-logs its step-0 report and the steps after the checkpoint (4) only:
    the validation at 3 and the epoch summary at 4 of the first run stay."""
    first = ContinuedCSVLogger(str(tmp_path), name="csv", version="")
    for metrics, step in [({"report": 1.0}, 0), ({"lr": 0.1}, 0), ({"val": 3.0}, 3), ({"seconds": 9.0}, 4),
                          ({"lr": 0.1}, 4), ({"loss": 5.0}, 5)]:  # fmt: skip
        first.log_metrics(metrics, step=step)
    first.save()  # killed after step 5; the checkpoint holds step 4
    resumed = ContinuedCSVLogger(str(tmp_path), name="csv", version="")
    for metrics, step in [({"report": 2.0}, 0), ({"lr": 0.2}, 4), ({"loss": 6.0}, 5), ({"val": 7.0}, 7)]:
        resumed.log_metrics(metrics, step=step)
        resumed.save()
    cells = sorted((int(row["step"]), key, float(value)) for row in _rows(tmp_path / "csv" / "metrics.csv")
                   for key, value in row.items() if key != "step" and value)  # fmt: skip
    assert cells == [(0, "lr", 0.1), (0, "report", 2.0), (3, "val", 3.0), (4, "lr", 0.2), (4, "seconds", 9.0),
                     (5, "loss", 6.0), (7, "val", 7.0)]  # fmt: skip

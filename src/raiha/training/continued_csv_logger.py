"""A CSV logger that continues ``metrics.csv`` across resumes instead of rewriting it.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a run starts in the same
folder, so a resumed run (``ckpt_path=last``) lost every row logged before the interruption.
Here the earlier rows are kept. A resumed run replays the steps after its checkpoint (and
re-logs step-0 reports): a new row replaces the earlier rows of the same step that hold
one of its metrics, so the file reads like one uninterrupted run whatever stopped it.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from raiha.io.atomic_io import atomic_write

NOT_METRICS = ("step", "epoch")


def _step(row: dict[str, Any]) -> float:
    value = row.get("step")
    if value is None or value == "":
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _cells(row: dict[str, Any]) -> set[tuple[float, str]]:
    """(step, metric) pairs that ``row`` holds a value for."""
    step = _step(row)
    return {(step, key) for key, value in row.items() if key not in NOT_METRICS and value not in (None, "")}


class ContinuedExperimentWriter(ExperimentWriter):
    """Lightning's writer, keeping the rows of an earlier run of the same folder."""

    def __init__(self, log_dir: str) -> None:
        self._earlier_rows: list[dict[str, str]] = []
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        """Read the earlier ``metrics.csv`` (Lightning deletes it here)."""
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            self._earlier_rows = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])

    def _drop_replayed_rows(self) -> None:
        """Remove from the file the earlier rows that the pending rows log again."""
        new_cells = set().union(*(_cells(row) for row in self.metrics))
        replayed = [index for index, row in enumerate(self._earlier_rows) if _cells(row) & new_cells]
        if not replayed:
            return
        drop = set(replayed)
        self._earlier_rows = [row for index, row in enumerate(self._earlier_rows) if index not in drop]
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            fieldnames = list(reader.fieldnames or self.metrics_keys)
            rows = list(reader)
        # the file starts with the earlier rows, in order: drop by position
        earlier_count = len(self._earlier_rows) + len(drop)
        kept = [row for index, row in enumerate(rows) if index >= earlier_count or index not in drop]

        def write(tmp: Any) -> None:
            with open(tmp, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(self.metrics_file_path, write)

    def save(self) -> None:
        """Drop earlier rows the resumed run replays, then append as Lightning does."""
        if self._earlier_rows and self.metrics:
            self._drop_replayed_rows()
        super().save()


class ContinuedCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives resumes (see the module docstring)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuedExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = ContinuedExperimentWriter(log_dir=self.log_dir)
        return self._experiment

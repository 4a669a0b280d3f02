"""A CSV logger that continues ``metrics.csv`` across resumes instead of rewriting it.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when a run starts in the same
folder, so a resumed run (``ckpt_path=last``) lost every row logged before the interruption.
Here the earlier rows are kept, except those at or after the first step the resumed run
logs: a run stopped between two checkpoints replays those steps, and its new rows replace
the old ones, so the file reads like one uninterrupted run whatever stopped it.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from raiha.io.atomic_io import atomic_write


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class ContinuedExperimentWriter(ExperimentWriter):
    """Lightning's writer, keeping the rows of an earlier run of the same folder."""

    def __init__(self, log_dir: str) -> None:
        self._earlier_rows: list[dict[str, str]] | None = None
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        """Read the earlier ``metrics.csv`` (Lightning deletes it here)."""
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            self._earlier_rows = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])

    def save(self) -> None:
        """On the first save, drop earlier rows the resumed run replays; then append."""
        if self._earlier_rows is not None and self.metrics:
            first_new_step = min(float(row["step"]) for row in self.metrics)
            kept = [row for row in self._earlier_rows if _step(row) < first_new_step]
            if len(kept) != len(self._earlier_rows):
                keys = self.metrics_keys

                def write(tmp: Any) -> None:
                    with open(tmp, "w", newline="") as file:
                        writer = csv.DictWriter(file, fieldnames=keys)
                        writer.writeheader()
                        writer.writerows(kept)

                atomic_write(self.metrics_file_path, write)
            self._earlier_rows = None
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

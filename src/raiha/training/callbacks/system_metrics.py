"""Per-epoch system figures for every logger (the CSV too): training images per second,
epoch wall time, peak host memory and, on a GPU, peak device memory.

W&B samples CPU/GPU utilisation by itself (its "System" panel); these numbers also
reach offline and CSV-only runs, and they are per epoch, so runs compare directly.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class SystemMetricsCallback(L.Callback):
    """Log ``system/*`` at the end of every training epoch (rank zero's figures)."""

    def __init__(self) -> None:
        super().__init__()
        self._start = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._images = 0
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += int(batch["composite"].shape[0])

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = max(time.perf_counter() - self._start, 1e-9)
        metrics = {
            "system/train_images_per_second": self._images / seconds * trainer.world_size,
            "system/epoch_seconds": seconds,
            "system/peak_host_memory_mb": peak_host_memory_mb(),
        }
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            metrics["system/peak_device_memory_mb"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

"""A callback for the crash tests: the training process SIGKILLs itself at a given step
(a real, uncatchable kill at a known point, so the test does not race the clock)."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L


class KillAtStep(L.Callback):
    """``os.kill(own pid, SIGKILL)`` before training step ``step`` runs."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = int(step)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

"""Save predictions as PNG files named like the composites (``eval.save_predictions=true``).

``<folder>/<Subset>/<composite stem>.png``: the layout ``raiha.score predictions=<folder>``
reads back, so a model's outputs can be rescored under any protocol and resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from PIL import Image

from raiha.io.atomic_io import atomic_write
from raiha.metrics.per_image import to_uint8_levels

PREDICTIONS_DIR = "predictions"


def prediction_path(folder: Path, composite: str) -> Path:
    """``folder/<Subset>/<stem>.png`` for ``<Subset>/composite_images/<stem>.jpg``."""
    relative = Path(composite)
    subset = relative.parts[0] if len(relative.parts) > 1 else ""
    return folder / subset / f"{relative.stem}.png"


def save_png(path: Path, image: np.ndarray) -> Path:
    """Write uint8 ``[H, W, 3]`` as PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda temporary: Image.fromarray(image).save(temporary, format="PNG"))


class PredictionWriter(L.Callback):
    """Writes every test batch's pasted prediction (uint8, truncated like the paper protocol)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        levels = to_uint8_levels(outputs["prediction"].detach().cpu(), "floor")  # [B, 3, S, S]
        images = levels.permute(0, 2, 3, 1).numpy().astype(np.uint8)  # [B, S, S, 3]
        for composite, image in zip(batch["composite_path"], images):
            save_png(prediction_path(self.folder, composite), image)


__all__ = ["PREDICTIONS_DIR", "PredictionWriter", "prediction_path", "save_png"]

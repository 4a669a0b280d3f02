"""Log image grids from the first val/test batch, titled column by column: composite | output | target | mask, and
in the reference setting also reference | attention over the reference (the attention the
foreground sends to each reference cell, paper Fig. 3) and attention over the background.

Grids are always saved as PNG under ``output_dir`` (offline users lose nothing) and
sent to every logger that takes images (W&B).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image

from raiha.evaluation.drawing import titled_harmonization_grid


class ImageGridCallback(L.Callback):
    """Args:
    output_dir: folder for the PNG grids.
    max_images: rows per grid.
    """

    def __init__(self, output_dir: str, max_images: int = 8) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.max_images = max_images

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self._log(trainer, outputs, batch, f"val/epoch_{trainer.current_epoch:03d}")

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0:
            self._log(trainer, outputs, batch, "test/first_batch")

    @rank_zero_only
    def _log(self, trainer: L.Trainer, outputs: Any, batch: dict[str, Any], name: str) -> None:
        if not isinstance(outputs, dict) or "prediction" not in outputs:
            return
        count = self.max_images
        attention_map = outputs.get("attention_map")
        # the reference half of the map exists only when the step used the reference
        used_reference = attention_map is not None and attention_map.shape[-1] == 2 * batch["composite"].shape[-1]
        reference = batch["reference"][:count] if used_reference else None
        grid, titles = titled_harmonization_grid(
            batch["composite"][:count], outputs["prediction"][:count], batch["real"][:count], batch["mask"][:count],
            reference=reference, attention_map=None if attention_map is None else attention_map[:count],
        )  # fmt: skip
        caption = " | ".join(titles)  # also drawn as column titles on the grid
        path = self.output_dir / f"{name.replace('/', '_')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"{name.split('/')[0]}/images",
                    images=[grid],
                    caption=[caption],
                    step=trainer.global_step,
                )

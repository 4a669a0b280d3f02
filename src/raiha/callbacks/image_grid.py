"""Log image grids (composite | output | target | mask) from the first val/test batch.

Grids are always saved as PNG under ``output_dir`` (offline users lose nothing) and
sent to every logger that takes images (W&B).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image


def harmonization_grid(composite: Tensor, prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """One row per image: composite | output | target | mask, in [0, 1].

    Args: images ``[B, 3, H, W]`` in [-1, 1]; mask ``[B, 1, H, W]``.
    Returns: ``[3, B*H', 4*W']`` (with padding).
    """
    columns = [composite, prediction, target, mask.expand_as(composite) * 2 - 1]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # [B*4, 3, H, W]
    tiles = (tiles.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


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
        grid = harmonization_grid(
            batch["composite"][:count], outputs["prediction"][:count], batch["real"][:count], batch["mask"][:count]
        )
        path = self.output_dir / f"{name.replace('/', '_')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"{name.split('/')[0]}/images",
                    images=[grid],
                    caption=["composite | output | target | mask"],
                    step=trainer.global_step,
                )

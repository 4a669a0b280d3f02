"""Log image grids from the first val/test batch: composite | output | target | mask, and
in the reference setting also reference | attention over the reference (the attention the
foreground sends to each reference cell, paper Fig. 3) and attention over the background.

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


def attention_overlay(image: Tensor, heat: Tensor) -> Tensor:
    """Heat ``[B, 1, H, W]`` in [0, 1] drawn in red over a dimmed grey ``image`` ``[B, 3, H, W]`` in [-1, 1]."""
    grey = ((image + 1) / 2).mean(dim=1, keepdim=True) * 0.5  # [B, 1, H, W]
    red = torch.tensor([1.0, 0.1, 0.0], device=image.device).view(1, 3, 1, 1)
    drawn = grey * (1 - heat) + red * heat  # [B, 3, H, W] in [0, 1]
    return drawn * 2 - 1


def harmonization_grid(
    composite: Tensor,
    prediction: Tensor,
    target: Tensor,
    mask: Tensor,
    reference: Tensor | None = None,
    attention_map: Tensor | None = None,
) -> Tensor:
    """One row per image, in [0, 1]: composite | [reference |] output | target | mask
    [| attention on the background | attention on the reference].

    Args: images ``[B, 3, H, W]`` in [-1, 1]; mask ``[B, 1, H, W]``; ``attention_map``
    ``[B, 1, H, W]`` (no reference) or ``[B, 1, H, 2W]`` (reference on the right).
    Returns: ``[3, B*H', K*W']`` (with padding).
    """
    columns = [composite] + ([reference] if reference is not None else [])
    columns += [prediction, target, mask.expand_as(composite) * 2 - 1]
    if attention_map is not None:
        width = composite.shape[-1]
        heat = attention_map.to(composite.dtype)
        columns.append(attention_overlay(composite, heat[..., :width]))
        if reference is not None and heat.shape[-1] == 2 * width:
            columns.append(attention_overlay(reference, heat[..., width:]))
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
        attention_map = outputs.get("attention_map")
        # the reference half of the map exists only when the step used the reference
        used_reference = attention_map is not None and attention_map.shape[-1] == 2 * batch["composite"].shape[-1]
        reference = batch["reference"][:count] if used_reference else None
        grid = harmonization_grid(
            batch["composite"][:count], outputs["prediction"][:count], batch["real"][:count], batch["mask"][:count],
            reference=reference, attention_map=None if attention_map is None else attention_map[:count],
        )  # fmt: skip
        caption = "composite | reference | output | target | mask | attention: background | reference"
        if reference is None:
            caption = "composite | output | target | mask" + (" | attention" if attention_map is not None else "")
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

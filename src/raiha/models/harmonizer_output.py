"""What every harmonizer returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from raiha.models.layers.fusion import AttentionResult


@dataclass
class HarmonizerOutput:
    """Attributes:
    image: ``[B, 3, H, W]`` in [-1, 1], the raw prediction (not yet pasted).
    attention: the fusion step's result, or None for ``attention="none"``.
    """

    image: Tensor
    attention: AttentionResult | None = None


def paste_foreground(prediction: Tensor, composite: Tensor, mask: Tensor) -> Tensor:
    """Only the foreground may change: ``prediction * m + composite * (1 - m)``."""
    return prediction * mask + composite * (1 - mask)

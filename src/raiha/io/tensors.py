"""The one conversion between stored pixels and network tensors: uint8 RGB ``[H, W, 3]``
<-> float ``[3, H, W]`` in ``[-1, 1]`` (``v / 127.5 - 1``; back: ``round((x + 1) * 127.5)``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def rgb_to_tensor(image: np.ndarray) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float32 ``[3, H, W]`` in [-1, 1]."""
    # in place after the one float copy: the same two operations, no second and third buffer
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def tensor_to_rgb(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` in [-1, 1] (clamped) -> uint8 ``[H, W, 3]``, rounded to the nearest level."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

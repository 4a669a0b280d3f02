"""The one pixel <-> tensor conversion: known values and an exact round trip."""

from __future__ import annotations

import numpy as np
import torch

from raiha.io.tensors import rgb_to_tensor, tensor_to_rgb


def test_known_values_and_layout() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 1] = (0, 255, 51)
    tensor = rgb_to_tensor(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert torch.equal(tensor[:, 0, 1], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1.0], dtype=torch.float32))
    assert tensor[:, 1, 2].tolist() == [-1.0, -1.0, -1.0]


def test_every_level_round_trips_exactly() -> None:
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack([levels, levels[::-1], levels], axis=1).reshape(16, 16, 3)
    assert np.array_equal(tensor_to_rgb(rgb_to_tensor(image)), image)


def test_out_of_range_values_are_clamped() -> None:
    tensor = torch.tensor([-3.0, 0.0, 2.5]).view(3, 1, 1)
    assert tensor_to_rgb(tensor).reshape(-1).tolist() == [0, 128, 255]

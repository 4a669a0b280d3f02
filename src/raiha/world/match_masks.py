"""Where a reference shows the composite's foreground identity (synthetic ground truth).

Used to score attention: the share of the foreground cells' attention that lands on
the matching object in the reference, against that object's share of the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from raiha.world.generate import WORLD_FILE
from raiha.world.ground_truth import load_ground_truth


class MatchMaskProvider:
    """``provider(composite_path, reference_path) -> [1, S, S]`` (1 on matching objects) or None."""

    def __init__(self, root: str | Path, image_size: int) -> None:
        ground_truth = load_ground_truth(root)
        world = json.loads((Path(root) / WORLD_FILE).read_text())
        self.images = ground_truth["images"]
        self.image_size = image_size
        self.world_size = int(world["config"]["image_size"])
        self._foreground_of = {entry["composite"]: entry["foreground"]["identity"] for entry in self.images.values()}

    def __call__(self, composite_path: str, reference_path: str) -> Tensor | None:
        identity = self._foreground_of.get(composite_path)
        reference = self.images.get(reference_path)
        if identity is None or reference is None:
            return None
        scale = self.image_size / self.world_size
        mask = torch.zeros(1, self.image_size, self.image_size)
        for obj in reference["objects"]:
            if obj["identity"] == identity:
                x0, y0, x1, y1 = (round(v * scale) for v in obj["bbox"])
                mask[:, y0:y1, x0:x1] = 1
        return mask

"""How much of the foreground's attention lands on the matching object in the reference.

For each sample with a reference whose matching region is known (synthetic ground
truth), averaged over the foreground query cells (each query row sums to 1):

- ``attention_on_match``: the mass on the reference cells that show the foreground's
  identity; ``match_key_share``: those cells' share of all keys (background cells of
  the composite plus every reference cell), what uniform attention would give;
- ``reference_mass``: the mass on the reference at all (the rest goes to the
  composite's own background);
- ``on_match_within_reference`` = attention_on_match / reference_mass, against
  ``match_area_share``, the match's share of the reference's cells.

SGF should put clearly more than the area shares on the match (paper Fig. 3).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from raiha.models.layers.fusion import foreground_cells_from_mask


class AttentionOnMatch(Metric):
    """Mean attention mass on the matching reference object, and the object's area share."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("mass_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("share_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("reference_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("key_share_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, weights: Tensor, foreground_cells: Tensor, reference_match: Tensor) -> None:
        """Args:
        weights: ``[B, N, N]`` attention over the wide (composite | reference) grid.
        foreground_cells: ``[B, 1, h, 2w]`` query cells.
        reference_match: ``[B, 1, S, S]`` 1 where the reference shows the foreground identity.
        """
        batch, _, height, wide_width = foreground_cells.shape
        wide_match = torch.cat([torch.zeros_like(reference_match), reference_match], dim=-1)  # [B, 1, S, 2S]
        match_cells = foreground_cells_from_mask(wide_match, (height, wide_width)).flatten(1)  # [B, N]
        queries = foreground_cells.flatten(1)  # [B, N]
        mass_per_query = torch.bmm(weights, match_cells[:, :, None].to(weights.dtype))[..., 0]  # [B, N]
        query_count = queries.sum(dim=1)
        mass = (mass_per_query * queries).sum(dim=1) / query_count.clamp_min(1)  # [B]
        share = match_cells.sum(dim=1) / (height * wide_width // 2)  # [B]
        reference_cells = torch.zeros_like(match_cells)
        reference_cells.view(batch, height, wide_width)[:, :, wide_width // 2 :] = 1
        reference_per_query = torch.bmm(weights, reference_cells[:, :, None].to(weights.dtype))[..., 0]  # [B, N]
        reference_mass = (reference_per_query * queries).sum(dim=1) / query_count.clamp_min(1)  # [B]
        key_share = match_cells.sum(dim=1) / (queries.shape[1] - query_count).clamp_min(1)  # [B]
        scored = (match_cells.sum(dim=1) > 0) & (query_count > 0)
        self.mass_sum += mass[scored].double().sum()
        self.share_sum += share[scored].double().sum()
        self.reference_sum += reference_mass[scored].double().sum()
        self.key_share_sum += key_share[scored].double().sum()
        self.count += int(scored.sum())

    def compute(self) -> dict[str, float]:
        count = int(self.count)
        keys = ("attention_on_match", "match_area_share", "reference_mass", "match_key_share", "on_match_within_reference")
        if count == 0:
            return {"n": 0, **{key: float("nan") for key in keys}}
        reference = float(self.reference_sum / count)
        return {
            "n": count,
            "attention_on_match": float(self.mass_sum / count),
            "match_area_share": float(self.share_sum / count),
            "reference_mass": reference,
            "match_key_share": float(self.key_share_sum / count),
            "on_match_within_reference": float(self.mass_sum / self.reference_sum) if reference > 0 else float("nan"),
        }

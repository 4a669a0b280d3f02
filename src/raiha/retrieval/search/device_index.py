"""A :class:`~raiha.retrieval.search.patch_index.PatchIndex` held on a device, filtering many queries at once.

The bounds are those of :meth:`Postings.upper_bounds` (triangle inequality on angles,
``ROUNDING_MARGIN`` on every cosine, float64 angles), computed for a batch of queries in
one pass over the postings: ``[Q, K]`` closest-centroid angles, ``[Q, P]`` posting gaps,
a scatter-max to ``[Q, N]`` image bounds. Every bound is >= the one the per-query filter
computes up to fp32 rounding of ``max cos(query, centroid)``, which the margin covers, so
the candidates are a superset of the valid references (tested against brute force).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from raiha.retrieval.search.patch_index import ROUNDING_MARGIN, PatchIndex, Postings, joint_rows
from raiha.retrieval.search.rule import PreparedQuery, RetrievalConfig

BOUND_ELEMENTS = 2**25  # at most this many float64 posting gaps at a time (256 MB)


@dataclass
class DevicePostings:
    """One clustering's centroids ``[K, D]`` and postings ``[P]`` on the device."""

    centroids: Tensor
    image_ids: Tensor  # [P] int64
    cluster_ids: Tensor  # [P] int64
    radii: Tensor  # [P] float64

    @classmethod
    def of(cls, postings: Postings, device: torch.device) -> DevicePostings:
        return cls(
            postings.centroids.float().to(device),
            postings.image_ids.long().to(device),
            postings.cluster_ids.long().to(device),
            postings.radii.double().to(device),
        )

    def upper_bounds(self, query_rows: Sequence[Tensor], num_images: int) -> Tensor:
        """float64 ``[Q, N]``: per query and image, an upper bound of ``max cos(query row, patch)``."""
        best_cos = torch.stack(
            [(rows @ self.centroids.T).amax(dim=0) for rows in query_rows]
        )  # [Q, K]
        closest = torch.arccos((best_cos.double() + ROUNDING_MARGIN).clamp(-1.0, 1.0))  # [Q, K]
        bounds = torch.full(
            (len(query_rows), num_images), -math.inf, dtype=torch.float64, device=best_cos.device
        )  # [Q, N]
        step = max(1, BOUND_ELEMENTS // max(1, len(query_rows)))
        for start in range(0, self.image_ids.numel(), step):
            clusters = self.cluster_ids[start : start + step]  # [p]
            gap = (closest[:, clusters] - self.radii[start : start + step]).clamp(min=0.0)  # [Q, p]
            images = self.image_ids[start : start + step].expand(len(query_rows), -1)  # [Q, p]
            bounds.scatter_reduce_(1, images, torch.cos(gap) + ROUNDING_MARGIN, reduce="amax")
        return bounds


class DeviceIndex:
    """Content and appearance postings of a :class:`PatchIndex` on ``device``."""

    def __init__(self, index: PatchIndex, device: torch.device) -> None:
        self.num_images = index.num_images
        self.content = DevicePostings.of(index.content, device)
        self.appearance = DevicePostings.of(index.appearance, device)
        self.joint = None if index.joint is None else DevicePostings.of(index.joint, device)

    def candidates(self, queries: Sequence[PreparedQuery], config: RetrievalConfig) -> Tensor:
        """bool ``[Q, N]``: images that may satisfy the rule for each query (a superset)."""
        low, _ = config.eps_a_bounds
        threshold = config.eps_c
        count = self.num_images
        keep = self.content.upper_bounds([q.fg_content for q in queries], count) >= threshold
        keep &= self.content.upper_bounds([q.bg_content for q in queries], count) >= threshold
        keep &= self.appearance.upper_bounds([q.bg_appearance for q in queries], count) >= low
        if self.joint is not None:  # one bg patch must meet both (see patch_index)
            rows = [joint_rows(q.bg_content, q.bg_appearance) for q in queries]
            keep &= self.joint.upper_bounds(rows, count) >= (threshold + low) / 2
        return keep

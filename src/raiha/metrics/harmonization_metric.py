"""HarmonizationMetrics: per-subset MSE / PSNR / fMSE over a test set, DDP-safe.

Every image becomes one row (sample_index, subset_idx, mse, psnr, fmse). Rows are
gathered across ranks by concatenation, then deduplicated by ``sample_index`` (the
DistributedSampler pads the last batch by repeating samples; the first row of each
index is kept), then averaged over images: per subset, and over all images for "All"
(image-weighted, not the mean of the subset means).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from raiha.metrics.per_image import check_protocol, per_image_scores

SCORE_NAMES: tuple[str, ...] = ("mse", "psnr", "fmse")
ROW_COLUMNS: tuple[str, ...] = (*SCORE_NAMES, "fg_ratio")


def first_occurrence_indices(keys: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct value of ``keys`` ``[N]``, in input order."""
    unique_keys, inverse = torch.unique(keys, return_inverse=True)  # [U], [N]
    positions = torch.arange(keys.numel(), device=keys.device)  # [N]
    first = torch.full((unique_keys.numel(),), keys.numel(), dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")  # [U]
    return first.sort().values  # [U]


def _summary(rows_mse: Tensor, rows_psnr: Tensor, rows_fmse: Tensor) -> dict[str, Any]:
    """Image means of one group of rows; NaN fMSE (empty masks) is left out of the fMSE mean."""
    fmse_finite = rows_fmse[~torch.isnan(rows_fmse)]
    fmse_mean = float(fmse_finite.mean()) if fmse_finite.numel() > 0 else math.nan
    return {
        "n": int(rows_mse.numel()),
        "mse": float(rows_mse.mean()),
        "psnr": float(rows_psnr.mean()),
        "fmse": fmse_mean,
    }


class HarmonizationMetrics(Metric):
    """Per-subset and overall image-mean MSE, PSNR and fMSE.

    Args:
        subset_names: names of the subsets, indexed by ``subset_idx`` in :meth:`update`.
        protocol: a protocol name of :data:`raiha.metrics.protocols.PROTOCOLS`.
        quantize: "floor" or "round" (quantising protocols only).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    sample_index: list[Tensor]
    subset_idx: list[Tensor]
    mse: list[Tensor]
    psnr: list[Tensor]
    fmse: list[Tensor]
    fg_ratio: list[Tensor]

    def __init__(
        self,
        subset_names: Sequence[str],
        protocol: str = "paper",
        quantize: str = "floor",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_protocol(protocol, quantize)
        if isinstance(subset_names, str) or len(subset_names) == 0:
            raise ValueError(
                f"subset_names must be a non-empty list of names, got {subset_names!r}; "
                'pass e.g. ["HCOCO", "HAdobe5k", "HFlickr", "Hday2night"]'
            )
        if len(set(subset_names)) != len(subset_names):
            raise ValueError(f"subset_names {list(subset_names)} contain duplicates")
        self.subset_names = tuple(str(name) for name in subset_names)
        self.protocol = protocol
        self.quantize = quantize
        for state_name in ("sample_index", "subset_idx", *ROW_COLUMNS):
            self.add_state(state_name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred: Tensor,
        target: Tensor,
        mask: Tensor,
        subset_idx: Tensor,
        sample_index: Tensor,
    ) -> None:
        """Score a batch and append one row per image.

        Args:
            pred: output already pasted on the composite, ``[B, 3, H, W]`` in [-1, 1].
            target: real images ``[B, 3, H, W]`` in [-1, 1].
            mask: foreground masks ``[B, 1, H, W]`` in [0, 1].
            subset_idx: ``[B]`` index into ``subset_names`` of each image.
            sample_index: ``[B]`` dataset index of each image (unique per image in the test set).
        """
        batch = pred.shape[0]
        subset_idx = torch.as_tensor(subset_idx, device=pred.device).long().reshape(-1)  # [B]
        sample_index = torch.as_tensor(sample_index, device=pred.device).long().reshape(-1)  # [B]
        if subset_idx.numel() != batch or sample_index.numel() != batch:
            raise ValueError(
                f"batch has {batch} images but subset_idx has {subset_idx.numel()} and "
                f"sample_index has {sample_index.numel()} entries; pass one of each per image"
            )
        if batch > 0 and (subset_idx.min() < 0 or subset_idx.max() >= len(self.subset_names)):
            raise ValueError(
                f"subset_idx values {subset_idx.tolist()} fall outside 0..{len(self.subset_names) - 1} "
                f"for subset_names {list(self.subset_names)}"
            )
        scores = per_image_scores(pred, target, mask, self.protocol, self.quantize)
        self.sample_index.append(sample_index)
        self.subset_idx.append(subset_idx)
        for column in ROW_COLUMNS:
            getattr(self, column).append(scores[column].double())

    def _deduplicated_rows(self) -> dict[str, Tensor]:
        """All rows as ``[N]`` tensors, one per distinct sample_index (the first kept)."""
        # A list of batches before syncing; one gathered tensor after a DDP sync.
        state = self.sample_index
        if (isinstance(state, list) and not state) or dim_zero_cat(state).numel() == 0:
            raise RuntimeError(
                "HarmonizationMetrics has no images: call update() with at least one batch "
                "before compute() (is the test dataloader empty?)"
            )
        columns = {
            name: dim_zero_cat(getattr(self, name))
            for name in ("sample_index", "subset_idx", *ROW_COLUMNS)
        }  # each [N]
        keep = first_occurrence_indices(columns["sample_index"])  # [U]
        return {name: column[keep] for name, column in columns.items()}  # each [U]

    def compute(self) -> dict[str, Any]:
        """Return ``{"protocol", "subsets": {name: {"n", "mse", "psnr", "fmse"}}, "all": {...}}``.

        Subsets without images are omitted. Raises RuntimeError when nothing was updated.
        """
        rows = self._deduplicated_rows()
        subsets: dict[str, dict[str, Any]] = {}
        for subset_position, subset_name in enumerate(self.subset_names):
            in_subset = rows["subset_idx"] == subset_position  # [U]
            if bool(in_subset.any()):
                subsets[subset_name] = _summary(
                    rows["mse"][in_subset], rows["psnr"][in_subset], rows["fmse"][in_subset]
                )
        return {
            "protocol": self.protocol,
            "quantize": self.quantize,
            "subsets": subsets,
            "all": _summary(rows["mse"], rows["psnr"], rows["fmse"]),
        }

    def per_image_rows(self) -> list[dict[str, Any]]:
        """Deduplicated per-image rows (synced across ranks when distributed), in arrival order.

        Each row: ``{"sample_index", "subset", "subset_idx", "mse", "psnr", "fmse", "fg_ratio"}``.
        """
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync):
            rows = self._deduplicated_rows()
        columns = {name: column.cpu().tolist() for name, column in rows.items()}
        return [
            {
                "sample_index": int(columns["sample_index"][row]),
                "subset": self.subset_names[int(columns["subset_idx"][row])],
                "subset_idx": int(columns["subset_idx"][row]),
                **{column: float(columns[column][row]) for column in ROW_COLUMNS},
            }
            for row in range(len(columns["sample_index"]))
        ]


__all__ = ["ROW_COLUMNS", "SCORE_NAMES", "HarmonizationMetrics", "first_occurrence_indices"]

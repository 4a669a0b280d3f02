"""``raiha.eval`` at ``eval.resolution=original | max_side=N | size=N``.

The network runs at its trained size on the usual test items; the change it made is
carried to the composite's full size by :func:`raiha.models.full_resolution.transfer_to_full_resolution`
(``affine`` or ``residual``, as ``raiha.Harmonizer`` does), then scored at the chosen
resolution by :func:`raiha.evaluation.image_scoring.score_prediction`. Full-size files are
decoded by ``DataLoader`` workers one image at a time each (``prefetch_factor=1``), so a
6048 x 4032 HAdobe5k JPEG is never held more than once per worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from raiha.evaluation.image_scoring import Resolution, score_prediction
from raiha.evaluation.per_image_rows import summarize_rows
from raiha.evaluation.prediction_writer import prediction_path, save_png
from raiha.evaluation.results_io import build_metrics_record
from raiha.evaluation.results_table import aggregate_runs
from raiha.io.image_io import check_same_size, load_rgb, load_soft_mask
from raiha.metrics.protocols import ScoringProtocol
from raiha.models.full_resolution import transfer_to_full_resolution
from raiha.models.harmonizer_output import paste_foreground

FULL = "full"


class FullResolutionItems(Dataset[dict[str, Any]]):
    """The test set's items plus the record's full-size composite, soft mask and real image."""

    def __init__(self, test_set: Any, *, rebuild_composite: bool) -> None:
        self.test_set = test_set
        base = getattr(test_set, "base", test_set)
        self.root, self.records = Path(base.root), base.records
        self.rebuild_composite = rebuild_composite

    def __len__(self) -> int:
        return len(self.test_set)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.test_set[index]
        record = self.records[index]
        composite_path, mask_path, real_path = (self.root / record.composite, self.root / record.mask, self.root / record.real)
        composite, mask, real = load_rgb(composite_path), load_soft_mask(mask_path), load_rgb(real_path)
        size = (composite.shape[1], composite.shape[0])
        check_same_size(composite_path, size, mask_path, (mask.shape[1], mask.shape[0]), "mask")
        check_same_size(composite_path, size, real_path, (real.shape[1], real.shape[0]), "real image")
        if self.rebuild_composite:  # the paper protocol's comp * m + real * (1 - m), at full size
            composite = np.where(mask[:, :, None] > 0.5, composite, real)
        item[FULL] = (composite, mask, real)
        return item


def _collate_one(items: list[dict[str, Any]]) -> dict[str, Any]:
    (item,) = items
    batch = default_collate([{key: value for key, value in item.items() if key != FULL}])
    batch[FULL] = item[FULL]
    return batch


def _device(module: L.LightningModule) -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else module.device


@torch.inference_mode()
def score_full_resolution(
    module: L.LightningModule,
    test_set: Any,
    *,
    protocol: ScoringProtocol,
    resolution: Resolution,
    background: str,
    method: str = "affine",
    reference_seed: int | None = None,
    num_workers: int = 0,
    save_dir: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """One ``per_image.csv`` row per test image (model and composite baseline)."""
    dataset = FullResolutionItems(test_set, rebuild_composite=background == "real_before")
    loader = DataLoader(
        dataset, batch_size=1, collate_fn=_collate_one, num_workers=num_workers,
        prefetch_factor=1 if num_workers > 0 else None,
    )  # fmt: skip
    device = _device(module)
    module.eval().to(device)
    use_reference = bool(module.hparams.get("evaluate_with_reference", False))
    for batch in loader:
        composite, mask, real = batch.pop(FULL)
        on_device = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
        output = module(on_device, use_reference=use_reference and "reference" in on_device)
        pasted = paste_foreground(output.image, on_device["composite"], on_device["mask"])  # [1, 3, S, S]
        prediction = transfer_to_full_resolution(
            composite, mask.astype(np.float32), on_device["composite"][0].float().cpu(), pasted[0].float().cpu(),
            on_device["mask"][0].float().cpu(), method,
        )  # fmt: skip
        name = batch["composite_path"][0]
        if save_dir is not None:
            save_png(prediction_path(save_dir, name), prediction)
        scores = score_prediction(
            prediction, real, mask, protocol, resolution, background=background, composite=composite
        )
        reference = batch.get("reference_path")
        yield {
            "name": name, "subset": batch["subset"][0], "reference_seed": reference_seed,
            "reference": reference[0] if reference is not None else None, **scores,
        }  # fmt: skip


def seeds_for(with_references: bool, seeds: Sequence[int] | None) -> list[int | None]:
    """The reference seeds of the run ([None] without references)."""
    return [int(seed) for seed in (seeds or [0])] if with_references else [None]




def run_full_resolution_protocol(
    module: L.LightningModule,
    datamodule: Any,
    *,
    protocol: ScoringProtocol,
    resolution: Resolution,
    background: str,
    with_references: bool,
    reference_seeds: Sequence[int] | None,
    method: str = "affine",
    num_workers: int = 0,
    save_dir: Path | None = None,
    fg_ratio_edges: Sequence[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Score every test image (once per reference seed with references); returns the record."""
    datamodule.prepare_data()
    datamodule.setup("test")
    names = list(datamodule.subset_names)
    per_seed: list[tuple[int | None, list[dict[str, Any]]]] = []
    for seed in seeds_for(with_references, reference_seeds):
        if seed is not None:
            datamodule.set_reference_seed(seed)
        rows = list(score_full_resolution(
            module, datamodule.test_set, protocol=protocol, resolution=resolution, background=background,
            method=method, reference_seed=seed, num_workers=num_workers, save_dir=save_dir,
        ))  # fmt: skip
        per_seed.append((seed, rows))
    summaries = [summarize_rows(rows, names) for _, rows in per_seed]
    model_results = aggregate_runs(summaries) if with_references else summaries[0]
    per_seed_extra = [{"seed": seed, **summary} for (seed, _), summary in zip(per_seed, summaries)]
    return build_metrics_record(
        protocol=protocol.name, dataset=str(datamodule.hparams.source), model=model_results,
        composite=summarize_rows(per_seed[0][1], names, prefix="composite_"),
        extra={"setting": "reference" if with_references else "non_reference",
               "per_seed": per_seed_extra if with_references else [], **(extra or {})},
        per_image_rows=[row for _, rows in per_seed for row in rows], subset_names=names,
        fg_ratio_edges=fg_ratio_edges,
    )  # fmt: skip


__all__ = ["FullResolutionItems", "run_full_resolution_protocol", "score_full_resolution", "seeds_for"]

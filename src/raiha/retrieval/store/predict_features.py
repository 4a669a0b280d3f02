"""Feature stores computed with Lightning ``trainer.predict``, so a large gallery can use N GPUs.

``FeatureExtractionModule.predict_step`` returns ``(indices, content [B, L, C],
appearance [B, L, D])`` for a batch of :class:`ImageListDataset` items. The
:class:`PredictionPartWriter` callback saves every rank's batches as part files in
``<store>/.predict_parts/``; after a barrier, rank zero writes the store's shards in
input order with :class:`raiha.retrieval.store.feature_store.FeatureStoreWriter` (same layout,
key and compression as :func:`raiha.retrieval.store.store_builder.build_feature_store`, so the
two builders give the same store) and removes the parts. Complete stores are reused.

Launch under DDP with one process per device (``devices=N``, ``strategy="ddp"``, e.g.
from a script started by the Lightning launcher); the distributed sampler may repeat a
few images to even out the ranks, duplicates are dropped by index.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from raiha.io.errors import RaihaDataError
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.store.compression import (
    AUTO,
    CompressionConfig,
    PcaFitter,
    resolve_compression,
)
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter
from raiha.retrieval.store.store_builder import (
    extract_features,
    feature_store_key,
    load_gallery_image,
)

PARTS_FOLDER = ".predict_parts"


class ImageListDataset(Dataset):
    """Items ``{"index", "image" [3, S, S], "ok", "error"}`` of a list of image paths.

    Args:
        names: image paths, relative to ``image_root`` when given.
        image_root: folder the names are relative to.
        image_size: square size the images are resized to.
        skip_unreadable: return ``ok=False`` for unreadable images instead of raising.
    """

    def __init__(
        self,
        names: Sequence[str],
        image_root: str | Path | None,
        image_size: int,
        skip_unreadable: bool,
    ) -> None:
        self.names = list(names)
        self.root = Path(image_root) if image_root is not None else None
        self.image_size = image_size
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        file = self.root / self.names[index] if self.root is not None else Path(self.names[index])
        try:
            image, ok, error = load_gallery_image(file, self.image_size), True, ""
        except (RaihaDataError, OSError) as failure:
            if not self.skip_unreadable:
                raise RaihaDataError(
                    f"gallery image {file} cannot be read ({failure}); fix or remove it, or pass "
                    "skip_unreadable=True to skip it (recorded in the store manifest)"
                ) from failure
            image, ok, error = torch.zeros(3, self.image_size, self.image_size), False, str(failure)
        return {"index": index, "image": image, "ok": ok, "error": error}


class FeatureExtractionModule(L.LightningModule):
    """A frozen content extractor plus HSV histograms, for ``trainer.predict``."""

    def __init__(self, extractor: DenseFeatureExtractor, hsv_config: HsvHistogramConfig) -> None:
        super().__init__()
        self.extractor = extractor
        self.hsv_config = hsv_config

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(indices [n], content [n, L, C], appearance [n, L, D])`` of the readable images (CPU)."""
        ok = batch["ok"].bool()
        images = batch["image"][ok]  # [n, 3, S, S]
        indices = batch["index"][ok].cpu()  # [n]
        if images.shape[0] == 0:
            grid = self.extractor.grid_size(batch["image"].shape[-1])
            cells = grid[0] * grid[1]
            empty = torch.zeros(0, cells, self.extractor.feature_dim, dtype=torch.float16)
            return indices, empty, torch.zeros(0, cells, self.hsv_config.dim, dtype=torch.float16)
        content, appearance = extract_features(
            images.cpu(), self.extractor, self.hsv_config, self.device
        )
        return indices, content, appearance


class PredictionPartWriter(BasePredictionWriter):
    """Saves each batch's predictions (and unreadable images) as ``rank<r>_<batch>.pt``."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.folder = Path(folder)

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: tuple[Tensor, Tensor, Tensor],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        indices, content, appearance = prediction
        failed = [
            {"index": int(i), "error": str(e)}
            for i, ok, e in zip(batch["index"], batch["ok"], batch["error"])
            if not bool(ok)
        ]
        self.folder.mkdir(parents=True, exist_ok=True)
        part = {"indices": indices, "content": content, "appearance": appearance, "failed": failed}
        torch.save(part, self.folder / f"rank{trainer.global_rank}_{batch_idx:06d}.pt")


class _Parts:
    """The part files of a prediction, read lazily: which indices each holds, and their rows."""

    def __init__(self, folder: Path) -> None:
        self.files: list[tuple[Path, set[int]]] = []
        self.failed: dict[int, str] = {}
        for path in sorted(folder.glob("rank*.pt")):
            part = torch.load(path, weights_only=True)
            self.files.append((path, set(part["indices"].tolist())))
            self.failed.update({item["index"]: item["error"] for item in part["failed"]})
        self.available = set().union(*(indices for _, indices in self.files))

    def rows(self, wanted: set[int]) -> dict[int, tuple[Tensor, Tensor]]:
        """``index -> (content [L, C], appearance [L, D])`` for the wanted indices present."""
        found: dict[int, tuple[Tensor, Tensor]] = {}
        for path, indices in self.files:
            if indices & (wanted - set(found)):
                part = torch.load(path, weights_only=True)
                for row, index in enumerate(part["indices"].tolist()):
                    if index in wanted and index not in found:  # duplicates: first copy wins
                        found[index] = (part["content"][row], part["appearance"][row])
        return found


def _assemble(
    writer: FeatureStoreWriter, names: Sequence[str], parts: _Parts, compression: CompressionConfig
) -> None:
    """Rank zero: write the pending shards from the part files, in input order."""
    if not parts.available:
        raise RaihaDataError(
            f"feature store {writer.folder}: none of the {len(names)} images could be read"
        )
    if writer.compressor is None:  # pca_int8: fit on the images build_feature_store would pick
        generator = torch.Generator().manual_seed(compression.seed)
        picks = torch.randperm(len(names), generator=generator)[: compression.fit_images]
        fitter = PcaFitter(writer.source_content_dim)
        for content, _ in parts.rows(set(picks.tolist())).values():
            fitter.add(content[None])  # [1, L, C]
        writer.set_compressor(fitter.compressor(compression))
    example_content, example_appearance = next(iter(parts.rows({min(parts.available)}).values()))
    for shard in writer.pending_shards():
        start = shard * writer.shard_size
        positions = range(start, start + len(writer.shard_inputs(shard)))
        rows = parts.rows(set(positions))
        kept = [i for i in positions if i in rows]
        skipped = [
            {"path": names[i], "error": parts.failed.get(i, "not extracted")}
            for i in positions
            if i not in rows
        ]
        if kept:
            content = torch.stack([rows[i][0] for i in kept])  # [n, L, C]
            appearance = torch.stack([rows[i][1] for i in kept])  # [n, L, D]
        else:
            content = example_content.new_zeros(0, *example_content.shape)
            appearance = example_appearance.new_zeros(0, *example_appearance.shape)
        writer.write_shard(shard, content, appearance, [names[i] for i in kept], skipped)


def build_feature_store_with_trainer(
    path: str | Path,
    image_paths: Sequence[str],
    extractor: DenseFeatureExtractor,
    trainer: L.Trainer,
    *,
    hsv_config: HsvHistogramConfig | None = None,
    image_size: int = 448,
    batch_size: int = 16,
    shard_size: int = 1024,
    image_root: str | Path | None = None,
    skip_unreadable: bool = False,
    rebuild: bool = False,
    num_workers: int = 2,
    compression: CompressionConfig | str | None = AUTO,
) -> FeatureStore:
    """Like :func:`~raiha.retrieval.store.store_builder.build_feature_store`, extracting with ``trainer.predict``.

    Args:
        trainer: a Lightning trainer (any accelerator and number of devices); this function
            adds a :class:`PredictionPartWriter` callback to it.
        num_workers: DataLoader workers.
        Other arguments: as ``build_feature_store``.
    """
    hsv_config = hsv_config or HsvHistogramConfig()
    grid = extractor.grid_size(image_size)
    compression = resolve_compression(compression, grid, extractor.feature_dim, hsv_config.dim)
    folder = Path(path)
    names = [str(name) for name in image_paths]
    key = feature_store_key(extractor, hsv_config, image_size, names, compression)
    writer: FeatureStoreWriter | None = None
    if trainer.is_global_zero:
        writer = FeatureStoreWriter(
            folder, key=key, image_paths=names, grid_size=grid,
            content_dim=extractor.feature_dim, appearance_dim=hsv_config.dim,
            shard_size=shard_size, rebuild=rebuild, compression=compression,
        )  # fmt: skip
        shutil.rmtree(folder / PARTS_FOLDER, ignore_errors=True)
    trainer.strategy.barrier()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    done = {int(shard) for shard in manifest["shards"]}
    todo = [
        index
        for shard in range(manifest["num_shards"])
        if shard not in done
        for index in range(shard * shard_size, min((shard + 1) * shard_size, len(names)))
    ]
    if todo:
        dataset = ImageListDataset(names, image_root, image_size, skip_unreadable)
        subset = torch.utils.data.Subset(dataset, todo)
        loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        part_writer = PredictionPartWriter(folder / PARTS_FOLDER)
        trainer.callbacks.append(part_writer)
        try:
            module = FeatureExtractionModule(extractor, hsv_config)
            trainer.predict(module, loader, return_predictions=False)
        finally:
            trainer.callbacks.remove(part_writer)
        trainer.strategy.barrier()
    if writer is not None and writer.pending_shards():
        _assemble(writer, names, _Parts(folder / PARTS_FOLDER), compression)
        shutil.rmtree(folder / PARTS_FOLDER, ignore_errors=True)
    trainer.strategy.barrier()
    return FeatureStore.open(folder)

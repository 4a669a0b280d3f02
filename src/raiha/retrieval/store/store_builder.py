"""Compute the content and HSV features of a gallery once, batched, into a :class:`FeatureStore`.

Images are decoded with :mod:`raiha.io.image_io`, resized (PIL bilinear, antialiased)
to ``image_size`` x ``image_size``, then fed to the content extractor and to the HSV
histograms on the extractor's grid, then compressed (default ``auto``: ``pca_int8`` for
the paper's 32 x 32 x 768 grids, fp16 for small stores; see
:mod:`raiha.retrieval.store.compression`; the PCA is first fitted on every cell of
``fit_images`` images drawn by the seed, an extra 0.4 % of extraction work on iHarmony4).
Interrupted builds resume at the first unfinished shard; a folder built with another
extractor, HSV config, size, list, compression or extraction precision (bf16 vs fp32) is
refused unless ``rebuild=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from raiha.io.build_journal import record_build
from raiha.io.errors import RaihaDataError
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.store.compression import (
    AUTO,
    CompressionConfig,
    FeatureCompressor,
    PcaFitter,
    resolve_compression,
)
from raiha.retrieval.store.extraction import (
    ImageFeatureBatcher,
    Unreadable,
    check_extraction_precision,
    extract_features,
    extractor_device,
    load_gallery_image,
    resolve_extraction_precision,
)
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter, image_list_sha256

__all__ = [
    "build_feature_store",
    "extract_features",
    "feature_store_key",
    "fit_compressor",
    "load_gallery_image",
]

log = logging.getLogger(__name__)


def feature_store_key(
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    image_size: int,
    image_paths: Sequence[str],
    compression: CompressionConfig | str = AUTO,
    precision: str = "fp32",
) -> dict[str, Any]:
    """What a store built from these inputs holds (compared on reopen and resume).

    ``precision`` is the resolved extraction precision (``"fp32"`` or ``"bf16"``); it is
    recorded only when it is not fp32, so the keys of fp32 stores built before it existed
    still match.
    """
    grid = extractor.grid_size(image_size)
    compression = resolve_compression(compression, grid, extractor.feature_dim, hsv_config.dim)
    key = {
        "extractor": extractor.cache_config(),
        "hsv": hsv_config.to_dict(),
        "image_size": int(image_size),
        "image_list_sha256": image_list_sha256(image_paths),
        "compression": compression.to_dict(),
    }
    if check_extraction_precision(precision) == "auto":
        raise ValueError(
            "feature_store_key needs the resolved extraction precision (fp32 or bf16), got 'auto'"
        )
    if precision != "fp32":
        key["extraction_precision"] = precision
    return key


def build_feature_store(
    path: str | Path,
    image_paths: Sequence[str],
    extractor: DenseFeatureExtractor,
    *,
    hsv_config: HsvHistogramConfig | None = None,
    image_size: int = 448,
    batch_size: int = 16,
    shard_size: int = 1024,
    image_root: str | Path | None = None,
    skip_unreadable: bool = False,
    rebuild: bool = False,
    device: str | torch.device | None = None,
    num_workers: int = 2,
    progress: bool = True,
    compression: CompressionConfig | str = AUTO,
    precision: str = "fp32",
) -> FeatureStore:
    """Compute (or resume, or reuse) the feature store of a gallery.

    Args:
        path: the store folder.
        image_paths: gallery images, relative to ``image_root`` when given (the names are
            what the store records and what retrieval lists will contain).
        extractor: the content feature extractor (its grid is also the HSV grid).
        hsv_config: the HSV binning; default :class:`HsvHistogramConfig()`.
        image_size: images are resized to this square size before both extractors.
        batch_size: images per forward pass.
        shard_size: images per shard file (the unit of resumption).
        image_root: folder the ``image_paths`` are relative to.
        skip_unreadable: skip (and record in the manifest) images that cannot be decoded,
            instead of failing.
        rebuild: replace a store built with other settings.
        device: where the extractor runs (default: the extractor's device).
        num_workers: threads decoding images.
        progress: show a rich progress bar.
        compression: how features are stored: a :class:`CompressionConfig`, ``"method[:k]"``
            (``"fp16"`` keeps uncompressed float16) or ``"auto"``: fp16 when it takes at most
            256,000 bytes per image, else ``pca_int8`` with k = 128 (the paper's 32 x 32 grid).
        precision: the extractor's precision, ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"``
            (bf16 on a CUDA device with native bf16); the resolved one is part of the key.
    """
    if not image_paths:
        raise ValueError(
            f"feature store {path}: the gallery image list is empty; give at least one image"
        )
    started = time.perf_counter()
    hsv_config = hsv_config or HsvHistogramConfig()
    precision = resolve_extraction_precision(precision, extractor_device(extractor, device))
    writer = open_store_writer(
        path, image_paths, extractor, hsv_config, image_size, shard_size, compression, rebuild,
        precision,
    )  # fmt: skip
    pending = writer.pending_shards()
    batcher = ImageFeatureBatcher(
        extractor, hsv_config, image_size, device=device, batch_size=batch_size,
        num_workers=num_workers, image_root=image_root, precision=precision,
    )  # fmt: skip
    with batcher:
        if writer.compressor is None and pending:
            writer.set_compressor(fit_compressor(writer.compression, image_paths, batcher))
        write_pending_shards(writer, batcher, "skip" if skip_unreadable else "raise", progress)
    store = writer.finish()
    if pending:
        record_build(path, "feature_store", time.perf_counter() - started, images=len(store))
    if len(store) == 0:
        raise ValueError(
            f"feature store {path}: none of the {len(image_paths)} gallery images could be read"
        )
    log.info(
        "feature store %s: %d images (%d skipped), %d bytes per image",
        path, len(store), len(store.skipped), store.bytes_per_image,
    )  # fmt: skip
    return store


def open_store_writer(
    path: str | Path,
    image_paths: Sequence[str],
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    image_size: int,
    shard_size: int,
    compression: CompressionConfig | str,
    rebuild: bool,
    precision: str = "fp32",
) -> FeatureStoreWriter:
    """The writer of the store these inputs give (new, resumed or complete)."""
    grid = extractor.grid_size(image_size)
    resolved = resolve_compression(compression, grid, extractor.feature_dim, hsv_config.dim)
    return FeatureStoreWriter(
        path,
        key=feature_store_key(extractor, hsv_config, image_size, image_paths, resolved, precision),
        image_paths=image_paths,
        grid_size=grid,
        content_dim=extractor.feature_dim,
        appearance_dim=hsv_config.dim,
        shard_size=shard_size,
        rebuild=rebuild,
        compression=resolved,
    )


def write_pending_shards(
    writer: FeatureStoreWriter, batcher: ImageFeatureBatcher, unreadable: Unreadable, progress: bool
) -> None:
    """Extract and write every pending shard, in order (batches never cross shards)."""
    pending = writer.pending_shards()
    total = len(writer.image_paths)
    done_images = total - sum(len(writer.shard_inputs(s)) for s in pending)
    columns = (
        TextColumn("gallery features"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("features", total=total, completed=done_images)
        for shard in pending:
            kept: list[str] = []
            skipped: list[dict[str, str]] = []
            content_parts: list[Tensor] = []  # each [n, L, C]
            appearance_parts: list[Tensor] = []  # each [n, L, D]
            for batch in batcher.batches(writer.shard_inputs(shard), unreadable):
                kept += batch.kept
                skipped += batch.skipped
                content_parts.append(batch.content)
                appearance_parts.append(batch.appearance)
                bar.advance(task, len(batch.names))
            writer.write_shard(
                shard, torch.cat(content_parts), torch.cat(appearance_parts), kept, skipped
            )


def fit_compressor(
    compression: CompressionConfig, image_paths: Sequence[str], batcher: ImageFeatureBatcher
) -> FeatureCompressor:
    """Fit ``pca_int8`` on every cell of ``compression.fit_images`` images drawn by its seed.

    Unreadable images are left out of the fit (the shard pass reports or skips them);
    other methods need no fit.
    """
    feature_dim = batcher.extractor.feature_dim
    if compression.method != "pca_int8" or not compression.projects(feature_dim):
        return FeatureCompressor(compression, feature_dim)
    generator = torch.Generator().manual_seed(compression.seed)
    picks = torch.randperm(len(image_paths), generator=generator)[: compression.fit_images]
    chosen = [image_paths[i] for i in picks.sort().values.tolist()]
    fitter = PcaFitter(feature_dim)
    for batch in batcher.batches(chosen, "ignore"):
        if batch.content.shape[0]:
            fitter.add(batch.content)  # [n, L, C]
    if fitter.count == 0:
        raise RaihaDataError(
            f"none of the {len(chosen)} images drawn to fit the {compression.method} compression "
            f"could be read (first: {batcher.file(chosen[0])}); check the image root"
        )
    return fitter.compressor(compression)

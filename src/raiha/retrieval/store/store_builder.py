"""Compute the content and HSV features of a gallery once, batched, into a :class:`FeatureStore`.

Images are decoded with :mod:`raiha.io.image_io`, resized (PIL bilinear, antialiased)
to ``image_size`` x ``image_size``, then fed to the content extractor and to the HSV
histograms on the extractor's grid, then compressed (default ``auto``: ``pca_int8`` for
the paper's 32 x 32 x 768 grids, fp16 for small stores; see
:mod:`raiha.retrieval.store.compression`; the PCA is first fitted on every cell of
``fit_images`` images drawn by the seed, an extra 0.4 % of extraction work on iHarmony4).
Interrupted builds resume at the first unfinished shard; a folder built with another
extractor, HSV config, size, list or compression is refused unless ``rebuild=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from raiha.io.build_journal import record_build
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_rgb, resize_rgb
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig, hsv_patch_histograms
from raiha.retrieval.store.compression import (
    AUTO,
    CompressionConfig,
    FeatureCompressor,
    PcaFitter,
    resolve_compression,
)
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter, image_list_sha256

log = logging.getLogger(__name__)


def feature_store_key(
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    image_size: int,
    image_paths: Sequence[str],
    compression: CompressionConfig | str = AUTO,
) -> dict[str, Any]:
    """What a store built from these inputs holds (compared on reopen and resume)."""
    grid = extractor.grid_size(image_size)
    compression = resolve_compression(compression, grid, extractor.feature_dim, hsv_config.dim)
    return {
        "extractor": extractor.cache_config(),
        "hsv": hsv_config.to_dict(),
        "image_size": int(image_size),
        "image_list_sha256": image_list_sha256(image_paths),
        "compression": compression.to_dict(),
    }


def load_gallery_image(path: Path, image_size: int) -> Tensor:
    """Decode ``path`` and resize it to ``[3, image_size, image_size]`` in ``[-1, 1]``."""
    pixels = resize_rgb(load_rgb(path), image_size)  # [S, S, 3] uint8
    image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)  # [3, S, S]
    return image.float() / 127.5 - 1.0


@torch.inference_mode()
def extract_features(
    images: Tensor,
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Content ``[B, L, C]`` and appearance ``[B, L, D]`` (float16, CPU) of ``images`` ``[B, 3, S, S]``."""
    grid = extractor.grid_size(images.shape[-1])
    # the histograms run on the device too (88 ms per 448 px image on one CPU core)
    images = images.to(device)
    content = extractor(images)  # [B, h, w, C]
    if tuple(content.shape[1:3]) != grid:
        raise ValueError(
            f"extractor {extractor.name} returned a {tuple(content.shape[1:3])} grid, expected {grid}"
        )
    appearance = hsv_patch_histograms(images, grid, hsv_config)  # [B, h, w, D]
    batch = images.shape[0]
    content = content.reshape(batch, grid[0] * grid[1], -1)  # [B, L, C]
    appearance = appearance.reshape(batch, grid[0] * grid[1], -1)  # [B, L, D]
    return content.to("cpu", torch.float16), appearance.to("cpu", torch.float16)


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
    """
    if not image_paths:
        raise ValueError(
            f"feature store {path}: the gallery image list is empty; give at least one image"
        )
    start = time.perf_counter()
    hsv_config = hsv_config or HsvHistogramConfig()
    if device is None:
        device = next(iter(extractor.parameters()), torch.empty(0)).device
    device = torch.device(device)
    grid = extractor.grid_size(image_size)
    compression = resolve_compression(compression, grid, extractor.feature_dim, hsv_config.dim)
    writer = FeatureStoreWriter(
        path,
        key=feature_store_key(extractor, hsv_config, image_size, image_paths, compression),
        image_paths=image_paths,
        grid_size=grid,
        content_dim=extractor.feature_dim,
        appearance_dim=hsv_config.dim,
        shard_size=shard_size,
        rebuild=rebuild,
        compression=compression,
    )
    root = Path(image_root) if image_root is not None else None
    if writer.compressor is None and writer.pending_shards():
        files = [root / name if root is not None else Path(name) for name in image_paths]
        writer.set_compressor(
            fit_compressor(
                compression,
                files,
                extractor,
                hsv_config,
                image_size,
                batch_size,
                device,
                num_workers,
            )
        )
    pending = writer.pending_shards()
    done_images = len(image_paths) - sum(len(writer.shard_inputs(s)) for s in pending)
    columns = (
        TextColumn("gallery features"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with (
        Progress(*columns, disable=not progress) as bar,
        ThreadPoolExecutor(max(1, num_workers)) as pool,
    ):
        task = bar.add_task("features", total=len(image_paths), completed=done_images)
        for shard in pending:
            names = writer.shard_inputs(shard)
            kept: list[str] = []
            skipped: list[dict[str, str]] = []
            content_parts: list[Tensor] = []
            appearance_parts: list[Tensor] = []
            for start in range(0, len(names), batch_size):
                batch_names = names[start : start + batch_size]
                files = [root / name if root is not None else Path(name) for name in batch_names]
                loaded = list(pool.map(lambda file: _try_load(file, image_size), files))
                images: list[Tensor] = []
                for name, file, (image, error) in zip(batch_names, files, loaded):
                    if image is None:
                        if not skip_unreadable:
                            raise RaihaDataError(
                                f"gallery image {file} cannot be read ({error}); fix or remove it, or "
                                f"pass skip_unreadable=True to skip it (recorded in the store manifest)"
                            )
                        log.warning("skipping unreadable gallery image %s: %s", file, error)
                        skipped.append({"path": name, "error": error})
                        continue
                    kept.append(name)
                    images.append(image)
                if images:
                    content, appearance = extract_features(
                        torch.stack(images), extractor, hsv_config, device
                    )
                    content_parts.append(content)
                    appearance_parts.append(appearance)
                bar.advance(task, len(batch_names))
            patches = grid[0] * grid[1]
            empty_content = torch.zeros(0, patches, extractor.feature_dim, dtype=torch.float16)
            empty_appearance = torch.zeros(0, patches, hsv_config.dim, dtype=torch.float16)
            writer.write_shard(
                shard,
                torch.cat(content_parts) if content_parts else empty_content,
                torch.cat(appearance_parts) if appearance_parts else empty_appearance,
                kept,
                skipped,
            )
    store = writer.finish()
    if pending:
        record_build(path, "feature_store", time.perf_counter() - start, images=len(store))
    if len(store) == 0:
        raise ValueError(
            f"feature store {path}: none of the {len(image_paths)} gallery images could be read"
        )
    log.info(
        "feature store %s: %d images (%d skipped), %d bytes per image",
        path,
        len(store),
        len(store.skipped),
        store.bytes_per_image,
    )
    return store


def fit_compressor(
    compression: CompressionConfig,
    files: Sequence[Path],
    extractor: DenseFeatureExtractor,
    hsv_config: HsvHistogramConfig,
    image_size: int,
    batch_size: int,
    device: torch.device,
    num_workers: int = 2,
) -> FeatureCompressor:
    """Fit ``pca_int8`` on every cell of ``compression.fit_images`` images drawn by its seed.

    Unreadable images are left out of the fit (the shard pass reports or skips them);
    other methods need no fit.
    """
    if compression.method != "pca_int8" or not compression.projects(extractor.feature_dim):
        return FeatureCompressor(compression, extractor.feature_dim)
    generator = torch.Generator().manual_seed(compression.seed)
    picks = torch.randperm(len(files), generator=generator)[: compression.fit_images]
    chosen = [files[i] for i in picks.sort().values.tolist()]
    fitter = PcaFitter(extractor.feature_dim)
    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        for start in range(0, len(chosen), batch_size):
            loaded = pool.map(
                lambda file: _try_load(file, image_size), chosen[start : start + batch_size]
            )
            images = [image for image, _ in loaded if image is not None]
            if images:
                content, _ = extract_features(torch.stack(images), extractor, hsv_config, device)
                fitter.add(content)  # [B, L, C]
    if fitter.count == 0:
        raise RaihaDataError(
            f"none of the {len(chosen)} images drawn to fit the {compression.method} compression "
            f"could be read (first: {chosen[0]}); check the image root"
        )
    return fitter.compressor(compression)


def _try_load(file: Path, image_size: int) -> tuple[Tensor | None, str]:
    """The image, or ``None`` and the reason it cannot be read."""
    try:
        return load_gallery_image(file, image_size), ""
    except (RaihaDataError, OSError) as error:
        return None, str(error)

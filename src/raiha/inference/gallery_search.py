"""References for a user's composite from a gallery: a folder of photos or a feature store.

A folder is indexed once with the checkpoint's extractor and HSV binning (a feature
store under ``<folder>/.raiha_features/<key>``, or ``cache_dir``), keyed by the
extractor's config, the size and the image list, so adding a photo builds a new store
and an unchanged folder is reused. Unreadable photos are skipped and recorded. The
search is the training rule (eps_c, eps_a) applied by an exact scan of the store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from raiha.inference.inputs import FOREGROUND_THRESHOLD, PreparedInput, to_model_tensor
from raiha.io.errors import RaihaDataError
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.grids import mask_to_cells
from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.rule import RetrievedRef, brute_force_search
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.store.extraction import extract_features
from raiha.retrieval.store.feature_store import MANIFEST, FeatureStore
from raiha.retrieval.store.store_builder import build_feature_store

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STORE_FOLDER = ".raiha_features"


def list_gallery_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursive, sorted, relative POSIX paths; stores skipped)."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and STORE_FOLDER not in path.parts
    )


def open_gallery(
    gallery: str | Path | FeatureStore,
    extractor: DenseFeatureExtractor,
    settings: RetrievalSettings,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FeatureStore:
    """A feature store for ``gallery``: given, opened from a store folder, or built for a photo folder."""
    if isinstance(gallery, FeatureStore):
        return gallery
    folder = Path(gallery).expanduser()
    if (folder / MANIFEST).is_file():
        return FeatureStore.open(folder)
    if not folder.is_dir():
        raise RaihaDataError(f"gallery {folder} is neither a folder of photos nor a feature store")
    images = list_gallery_images(folder)
    if not images:
        raise RaihaDataError(f"gallery {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    key = short_hash(
        {"extractor": extractor.cache_config(), "hsv": settings.hsv.to_dict(), "size": settings.image_size, "images": images}
    )
    store_dir = Path(cache_dir).expanduser() if cache_dir else folder / STORE_FOLDER
    store = build_feature_store(
        store_dir / key, images, extractor, hsv_config=settings.hsv, image_size=settings.image_size,
        image_root=folder, skip_unreadable=True, progress=progress, compression=settings.compression,
        batch_size=min(settings.batch_size, 32), num_workers=0,
    )  # fmt: skip
    if len(store) == 0:
        raise RaihaDataError(f"gallery {folder}: none of its {len(images)} images could be read")
    return store


@torch.inference_mode()
def find_references(
    prepared: PreparedInput,
    store: FeatureStore,
    extractor: DenseFeatureExtractor,
    settings: RetrievalSettings,
    top_k: int = 1,
) -> list[RetrievedRef]:
    """The composite's valid references in ``store`` by the retrieval rule, best first (at most ``top_k``)."""
    device = next(iter(extractor.buffers()), torch.empty(0)).device
    image = to_model_tensor(prepared.composite, settings.image_size)[None]  # [1, 3, S', S']
    content, appearance = extract_features(image, extractor, settings.hsv, device)  # [1, L, C], [1, L, D]
    height, width = store.grid_size
    foreground = torch.from_numpy(np.ascontiguousarray(prepared.alpha >= FOREGROUND_THRESHOLD))
    query = RetrievalQuery(
        content[0].float().reshape(height, width, -1),
        appearance[0].float().reshape(height, width, -1),
        mask_to_cells(foreground, (height, width)),
    )
    refs = brute_force_search(query, store, settings.retrieval_config())
    log.info("%s: %d valid references in the gallery", prepared.name, len(refs))
    return refs[:top_k]


def resolve_gallery_root(gallery: str | Path | FeatureStore, root: str | Path | None) -> Path | None:
    """The folder a gallery's image paths are relative to: ``root`` if given, else the photo folder."""
    if root is not None:
        return Path(root).expanduser()
    if isinstance(gallery, FeatureStore) or (Path(gallery) / MANIFEST).is_file():
        return None  # a store records relative names only: pass gallery_root to read its images
    return Path(gallery).expanduser()

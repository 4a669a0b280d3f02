"""The whole retrieval job: iHarmony4-layout dataset -> feature stores -> RAHarmony4 lists.

- Gallery: the unique real images of the ``train`` split (every list searches it).
- Queries: the composites of the chosen splits; their content and HSV grids come from
  the composite itself, their foreground cells from the mask (a cell touched by the mask
  is foreground), and their own real image is never returned.
- Search: the rule of :mod:`raiha.retrieval.search.rule` (``eps_c``, ``eps_a`` or an
  illumination range, ``max_refs``), by one of the exact paths of
  :mod:`raiha.retrieval.list_search` (same lists).
- Output: ``IHD_<split>.jsonl`` per split, ``{"input", "mask", "refs", "scores"}`` a line,
  ``scores[i] = [content score, illumination score]`` of ``refs[i]``. Composites without
  a valid reference are written with ``"refs": []`` (training then uses the augmented
  reference only); ``summary.json`` counts them.

Everything is cached under keys of the settings (:mod:`raiha.retrieval.settings`): a
second call with the same settings reuses the stores, the index and the lists. The exact
scores of each split's search are kept next to the lists, one file per split and eps_c
(``lists/scores-<split>-c<eps_c>-<hash>.safetensors``): another eps_a or illumination
range at the same eps_c derives its lists from them without searching (the same bytes as
a search); a rule they cannot vouch for (a lower low end after an indexed or batched
search) searches and replaces them with the wider scores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raiha.io.atomic_io import atomic_write_json
from raiha.io.build_journal import record_build
from raiha.io.errors import RaihaDataError
from raiha.io.reference_lists import write_reference_list
from raiha.io.split_lists import HarmonizationRecord, read_split
from raiha.retrieval.features.registry import create_extractor
from raiha.retrieval.list_search import (
    extracted_features,
    load_cached_scores,
    make_searcher,
    score_cache_location,
    score_split,
    split_entries,
    stored_features,
)
from raiha.retrieval.search.patch_index import PatchIndex
from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.search.score_cache import CachedScores
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.store.compression import resolve_compression
from raiha.retrieval.store.feature_store import FeatureStore, image_list_sha256
from raiha.retrieval.store.store_builder import build_feature_store

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
GALLERY_SPLIT = "train"


@dataclass
class ReferencePipelineOutputs:
    """Where the job's results are: one list per split, the stores, and the counts."""

    lists: dict[str, Path]
    lists_dir: Path
    gallery: FeatureStore
    composite_stores: dict[str, FeatureStore]
    summary: dict[str, Any]
    reused: bool

    @property
    def stores(self) -> list[FeatureStore]:
        """Gallery and composite stores (for semantic grids)."""
        return [self.gallery, *self.composite_stores.values()]


def gallery_images(root: Path, subsets: Sequence[str] | None = None) -> list[str]:
    """The unique real images of the train split, in list order (the retrieval gallery)."""
    records = read_split(root, GALLERY_SPLIT, subsets)
    paths = list(dict.fromkeys(record.real for record in records))
    if not paths:
        raise RaihaDataError(
            f"the '{GALLERY_SPLIT}' split of {root} lists no composites, so the retrieval gallery "
            f"(its real images) would be empty; check the root and its IHD_{GALLERY_SPLIT}.txt"
        )
    return paths


def _features_dir(root: Path, data_dir: Path, settings: RetrievalSettings) -> Path:
    return Path(data_dir) / "retrieval" / settings.features_key(root)


def _store_kwargs(
    settings: RetrievalSettings, root: Path, progress: bool, rebuild: bool
) -> dict[str, Any]:
    return {
        "image_size": settings.image_size, "batch_size": settings.batch_size,
        "shard_size": settings.shard_size, "image_root": root, "hsv_config": settings.hsv,
        "skip_unreadable": settings.skip_unreadable, "rebuild": rebuild,
        "device": settings.device, "num_workers": settings.num_workers, "progress": progress,
        "precision": settings.extraction_precision,
    }  # fmt: skip


def build_reference_lists(
    root: str | Path,
    data_dir: str | Path,
    settings: RetrievalSettings,
    *,
    splits: Sequence[str] = ("train", "test"),
    progress: bool = True,
    rebuild: bool = False,
) -> ReferencePipelineOutputs:
    """Build (or reuse) the stores and the reference lists of ``splits``; see the module docstring.

    Args:
        root: the dataset root in iHarmony4 layout (split lists, subsets' folders).
        data_dir: the cache folder (``<data_dir>/retrieval/...``).
        settings: the retrieval settings.
        splits: the splits whose composites are queries.
        progress: show rich progress bars.
        rebuild: replace stores built with other settings (e.g. changed extractor weights,
            which keep the folder name) and recompute the lists.
    """
    start = time.perf_counter()
    root = Path(root)
    records = {split: read_split(root, split, settings.subsets) for split in splits}
    gallery_paths = gallery_images(root, settings.subsets)
    folder = _features_dir(root, data_dir, settings)
    extractor = create_extractor(settings.extractor, **dict(settings.extractor_kwargs))
    extractor = extractor.to(settings.device)
    gallery, composite_stores, composite_keys = _build_stores(
        root, folder, records, gallery_paths, extractor, settings, progress, rebuild
    )
    lists_dir, key = _lists_location(folder, settings, gallery, composite_keys, splits)
    lists = {split: lists_dir / f"IHD_{split}.jsonl" for split in splits}
    cached = _cached_summary(lists_dir, key, lists)
    if cached is not None and not rebuild:
        log.info("reference lists reused from %s", lists_dir)
        return ReferencePipelineOutputs(lists, lists_dir, gallery, composite_stores, cached, True)
    summary: dict[str, Any] = {"key": key, "gallery_images": len(gallery), "splits": {}}
    summary["gallery_skipped"] = gallery.skipped
    summary["scores_reused"] = {}
    config = settings.retrieval_config()
    searcher = None  # built on the first split whose scores are not cached
    for split in splits:
        scores, reused, searcher = _split_scores(
            split, root, folder, records[split], gallery, composite_stores.get(split),
            composite_keys[split], extractor, settings, config, searcher, progress, rebuild,
        )  # fmt: skip
        summary["scores_reused"][split] = reused
        entries, counts = split_entries(records[split], scores, config, gallery.image_paths)
        write_reference_list(lists[split], entries)
        summary["splits"][split] = counts
        log.info(
            "%s: %d composites, %d without a valid reference (written with refs: []), %.2f refs on average",
            split, counts["composites"], counts["empty"], counts["mean_refs"],
        )  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(lists_dir / SUMMARY_FILE, summary)  # written last: marks the lists complete
    record_build(lists_dir, "reference_lists", summary["seconds"], splits=list(splits))
    return ReferencePipelineOutputs(lists, lists_dir, gallery, composite_stores, summary, False)


def _build_stores(
    root: Path,
    folder: Path,
    records: dict[str, list[HarmonizationRecord]],
    gallery_paths: list[str],
    extractor: Any,
    settings: RetrievalSettings,
    progress: bool,
    rebuild: bool,
) -> tuple[FeatureStore, dict[str, FeatureStore], dict[str, Any]]:
    """The gallery store and each split's composite store (or, unstored, its key)."""
    store_kwargs = _store_kwargs(settings, root, progress, rebuild)
    log.info("retrieval gallery: %d real images of %s", len(gallery_paths), root)
    gallery = build_feature_store(
        folder / f"gallery-{image_list_sha256(gallery_paths)[:10]}", gallery_paths, extractor,
        compression=settings.compression, **store_kwargs,
    )  # fmt: skip
    composite_stores: dict[str, FeatureStore] = {}
    composite_keys: dict[str, Any] = {}
    for split, split_records in records.items():
        names = [record.composite for record in split_records]
        if not names:
            raise RaihaDataError(
                f"the '{split}' split of {root} lists no composites; drop it from splits"
            )
        if settings.store_composites:
            store = build_feature_store(
                folder / f"composites-{split}-{image_list_sha256(names)[:10]}", names, extractor,
                compression=settings.composite_compression, **store_kwargs,
            )  # fmt: skip
            composite_stores[split] = store
            composite_keys[split] = store.key
        else:
            composite_keys[split] = _unstored_key(settings, names)
    return gallery, composite_stores, composite_keys


def _split_scores(
    split: str,
    root: Path,
    folder: Path,
    records: list[HarmonizationRecord],
    gallery: FeatureStore,
    composite_store: FeatureStore | None,
    composite_key: Any,
    extractor: Any,
    settings: RetrievalSettings,
    config: RetrievalConfig,
    searcher: Any,
    progress: bool,
    rebuild: bool,
) -> tuple[CachedScores, bool, Any]:
    """The split's scores: from the score cache when it covers ``config``, else searched (the
    searcher is built once, on the first split that needs it) and saved. Returns the scores,
    whether they were reused, and the searcher."""
    scores_path, scores_key = score_cache_location(
        folder, settings, gallery, composite_key, records, split
    )
    scores = None if rebuild else load_cached_scores(scores_path, scores_key, config)
    if scores is not None:
        log.info("%s: lists derived from the cached scores %s", split, scores_path.name)
        return scores, True, searcher
    searcher = searcher or _make_searcher(gallery, settings)
    features = (
        stored_features(records, composite_store)
        if composite_store is not None
        else extracted_features(records, extractor, root, settings)
    )
    scores = score_split(
        split, features, len(records), searcher, config, root, settings, progress, scores_key
    )
    scores.save(scores_path)
    return scores, False, searcher


def _make_searcher(gallery: FeatureStore, settings: RetrievalSettings) -> Any:
    """The searcher of ``settings.search`` (with the gallery's patch index where it uses one)."""
    indexed = settings.search in ("indexed", "batched")
    index = _patch_index(gallery, settings) if indexed else None
    return make_searcher(gallery, settings.search, index, settings.search_device)


def _unstored_key(settings: RetrievalSettings, names: Sequence[str]) -> dict[str, Any]:
    """What composites searched without a store are: the extractor settings and the list."""
    return {
        "extractor": settings.extractor,
        "extractor_kwargs": dict(settings.extractor_kwargs),
        "list": image_list_sha256(names),
    }


def _lists_location(
    folder: Path,
    settings: RetrievalSettings,
    gallery: FeatureStore,
    composite_keys: Mapping[str, Any],
    splits: Sequence[str],
) -> tuple[Path, dict[str, Any]]:
    """The lists folder ``lists/<rule>-<key hash>`` and the key it is valid for."""
    key = settings.lists_key({"gallery": gallery.key, **composite_keys}, splits)
    return folder / "lists" / f"{settings.rule_name()}-{short_hash(key, 8)}", key


def _cached_summary(
    lists_dir: Path, key: dict[str, Any], lists: Mapping[str, Path]
) -> dict[str, Any] | None:
    """The summary of complete lists with the same key, else None."""
    path = lists_dir / SUMMARY_FILE
    if not path.is_file() or not all(p.is_file() for p in lists.values()):
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    return summary if summary.get("key") == json.loads(json.dumps(key)) else None


def _patch_index(gallery: FeatureStore, settings: RetrievalSettings) -> PatchIndex:
    """The gallery's patch index, loaded from its cache file or built and saved."""
    name = short_hash({"index": dataclasses.asdict(settings.index), "gallery": gallery.key})
    path = gallery.folder / f"index-{name}.safetensors"
    if path.is_file():
        index = PatchIndex.load(path)
        if index.num_images == len(gallery):
            return index
    log.info("building the patch index of %d gallery images", len(gallery))
    index = PatchIndex.build(gallery, settings.index, device=settings.device)
    index.save(path)
    return index


def run_reference_pipeline(
    *,
    root: str | Path,
    data_dir: str | Path,
    image_size: int,
    settings: Mapping[str, Any],
    build: bool,
    splits: Sequence[str] = ("train", "test"),
) -> ReferencePipelineOutputs:
    """Entry point for the datamodule: build (``build=True``, rank zero) or open the outputs.

    Complete outputs for these settings are opened without building the extractor (the
    test protocol calls this once per reference seed; loading a ViT only to find the cache
    cost seconds each time). Their stores were keyed by the extractor's name and arguments
    (the folder) and its weights (the store key) when they were built: after replacing a
    weights file in place, rebuild with ``python -m raiha.retrieve ... rebuild=true``.

    Args:
        root, data_dir: as :func:`build_reference_lists`.
        image_size: the retrieval image size unless ``settings`` gives ``image_size``.
        settings: :class:`RetrievalSettings` fields (``data.references.retrieval``).
        build: compute missing outputs; False only opens them (other ranks, after rank zero).
    """
    resolved = RetrievalSettings.from_dict({"image_size": image_size, **dict(settings)})
    try:
        return open_reference_lists(root, data_dir, resolved, splits=splits)
    except (RaihaDataError, FileNotFoundError, ValueError):
        if not build:
            raise
    return build_reference_lists(root, data_dir, resolved, splits=splits, progress=False)


def open_reference_lists(
    root: str | Path,
    data_dir: str | Path,
    settings: RetrievalSettings,
    *,
    splits: Sequence[str] = ("train", "test"),
) -> ReferencePipelineOutputs:
    """The outputs of an earlier :func:`build_reference_lists` with the same settings (no computing)."""
    root = Path(root)
    folder = _features_dir(root, data_dir, settings)
    gallery_paths = gallery_images(root, settings.subsets)
    gallery_folder = folder / f"gallery-{image_list_sha256(gallery_paths)[:10]}"
    if not (gallery_folder / "manifest.json").is_file():
        raise RaihaDataError(
            f"no retrieval outputs for these settings under {folder}; build them with "
            "`python -m raiha.retrieve` or the datamodule's prepare_data (rank zero)"
        )
    gallery = _open_store(gallery_folder, gallery_paths, settings, settings.compression)
    stores: dict[str, FeatureStore] = {}
    composite_keys: dict[str, Any] = {}
    for split in splits:
        names = [record.composite for record in read_split(root, split, settings.subsets)]
        if settings.store_composites:
            stores[split] = _open_store(
                folder / f"composites-{split}-{image_list_sha256(names)[:10]}",
                names, settings, settings.composite_compression,
            )  # fmt: skip
            composite_keys[split] = stores[split].key
        else:
            composite_keys[split] = _unstored_key(settings, names)
    lists_dir, key = _lists_location(folder, settings, gallery, composite_keys, splits)
    lists = {split: lists_dir / f"IHD_{split}.jsonl" for split in splits}
    summary = _cached_summary(lists_dir, key, lists)
    if summary is None:
        raise RaihaDataError(
            f"no complete reference lists for these retrieval settings in {lists_dir}; build "
            "them with `python -m raiha.retrieve` or the datamodule's prepare_data (rank zero)"
        )
    return ReferencePipelineOutputs(lists, lists_dir, gallery, stores, summary, True)


def _open_store(
    folder: Path, names: Sequence[str], settings: RetrievalSettings, compression: Any
) -> FeatureStore:
    """The finished store in ``folder``; FeatureStoreMismatchError when it was built from
    other images or with other HSV, size, shard or compression settings (the extractor's
    name and arguments are in the folder's name)."""
    store = FeatureStore.open(folder)
    resolved = resolve_compression(
        compression, store.grid_size, store.source_content_dim, store.appearance_dim
    )
    expected = {
        "hsv": settings.hsv.to_dict(), "image_size": settings.image_size,
        "image_list_sha256": image_list_sha256(names), "shard_size": settings.shard_size,
        "compression": resolved.to_dict(),
    }  # fmt: skip
    return FeatureStore.open(folder, expected_key=expected)

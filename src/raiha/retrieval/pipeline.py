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
from raiha.retrieval.list_search import split_entries
from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.search.score_cache import CachedScores
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.split_search import SplitSearch, prepare_search
from raiha.retrieval.store.compression import resolve_compression
from raiha.retrieval.store.feature_store import FeatureStore, image_list_sha256
from raiha.retrieval.store.store_builder import build_feature_store
from raiha.utils.rank_group import SINGLE_PROCESS, RankGroup

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
    group: RankGroup = SINGLE_PROCESS,
) -> ReferencePipelineOutputs:
    """Build (or reuse) the stores and the reference lists of ``splits``; see the module docstring.

    With a ``group`` of several processes (``torchrun``, Lightning's DDP) every rank calls
    this: rank zero builds the stores (and the patch index), each rank scores its parts of
    the queries (:mod:`raiha.retrieval.query_parts`), rank zero merges them and writes the
    lists (the bytes one process writes), and every rank returns the outputs.

    Args:
        root: the dataset root in iHarmony4 layout (split lists, subsets' folders).
        data_dir: the cache folder (``<data_dir>/retrieval/...``).
        settings: the retrieval settings.
        splits: the splits whose composites are queries.
        progress: show rich progress bars.
        rebuild: replace stores built with other settings (e.g. changed extractor weights,
            which keep the folder name) and recompute the lists.
        group: this process's rank among the job's processes.
    """
    start = time.perf_counter()
    root = Path(root)
    records = {split: read_split(root, split, settings.subsets) for split in splits}
    gallery_paths = gallery_images(root, settings.subsets)
    folder = _features_dir(root, data_dir, settings)
    extractor = _extractor(settings) if group.is_zero else None
    if group.is_zero:
        gallery, composite_stores, composite_keys = _build_stores(
            root, folder, records, gallery_paths, extractor, settings, progress, rebuild
        )
        prepare_search(folder, settings, gallery, composite_keys, records, rebuild, group)
    group.barrier()  # the stores (and the patch index) exist
    if not group.is_zero:
        gallery, composite_stores, composite_keys = _open_stores(root, folder, records, gallery_paths, settings)
    lists_dir, key = _lists_location(folder, settings, gallery, composite_keys, splits)
    lists = {split: lists_dir / f"IHD_{split}.jsonl" for split in splits}
    cached = _cached_summary(lists_dir, key, lists)
    if cached is not None and not rebuild:
        log.info("reference lists reused from %s", lists_dir)
        return ReferencePipelineOutputs(lists, lists_dir, gallery, composite_stores, cached, True)
    summary: dict[str, Any] = {"key": key, "gallery_images": len(gallery), "splits": {}}
    summary["gallery_skipped"] = gallery.skipped
    summary["scores_reused"] = {}
    summary["ranks"] = group.world_size
    config = settings.retrieval_config()
    def make_extractor() -> Any:  # other ranks build it only to extract unstored composites
        return extractor or _extractor(settings)

    search = SplitSearch(root, folder, gallery, make_extractor, settings, config, group, progress)
    for split in splits:
        scores, reused = search.scores(split, records[split], composite_stores.get(split),
                                       composite_keys[split], rebuild)  # fmt: skip
        summary["scores_reused"][split] = reused
        if group.is_zero:
            assert scores is not None  # rank zero always holds the split's scores
            summary["splits"][split] = _write_list(lists[split], split, records[split], scores, config, gallery)
    if group.is_zero:
        summary["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write_json(lists_dir / SUMMARY_FILE, summary)  # written last: marks the lists complete
        record_build(lists_dir, "reference_lists", summary["seconds"], splits=list(splits))
    group.barrier()  # the lists are written
    if not group.is_zero:
        summary = _cached_summary(lists_dir, key, lists) or summary
    return ReferencePipelineOutputs(lists, lists_dir, gallery, composite_stores, summary, False)


def _extractor(settings: RetrievalSettings) -> Any:
    """The content extractor of ``settings``, on its device."""
    return create_extractor(settings.extractor, **dict(settings.extractor_kwargs)).to(settings.device)


def _write_list(
    path: Path,
    split: str,
    records: list[HarmonizationRecord],
    scores: CachedScores,
    config: RetrievalConfig,
    gallery: FeatureStore,
) -> dict[str, Any]:
    """Write the split's list from its scores; returns its counts."""
    entries, counts = split_entries(records, scores, config, gallery.image_paths)
    write_reference_list(path, entries)
    log.info(
        "%s: %d composites, %d without a valid reference (written with refs: []), %.2f refs on average",
        split, counts["composites"], counts["empty"], counts["mean_refs"],
    )  # fmt: skip
    return counts


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


def run_reference_pipeline(
    *,
    root: str | Path,
    data_dir: str | Path,
    image_size: int,
    settings: Mapping[str, Any],
    build: bool,
    splits: Sequence[str] = ("train", "test"),
    group: RankGroup = SINGLE_PROCESS,
) -> ReferencePipelineOutputs:
    """Entry point for the datamodule: build (``build=True``) or open the outputs.

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
        group: the job's ranks, which then all call this and share the search (DDP).
    """
    resolved = RetrievalSettings.from_dict({"image_size": image_size, **dict(settings)})
    try:
        return open_reference_lists(root, data_dir, resolved, splits=splits)
    except (RaihaDataError, FileNotFoundError, ValueError):
        if not build:
            raise
    return build_reference_lists(root, data_dir, resolved, splits=splits, progress=False, group=group)


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
    records = {split: read_split(root, split, settings.subsets) for split in splits}
    gallery, stores, composite_keys = _open_stores(
        root, folder, records, gallery_images(root, settings.subsets), settings
    )
    lists_dir, key = _lists_location(folder, settings, gallery, composite_keys, splits)
    lists = {split: lists_dir / f"IHD_{split}.jsonl" for split in splits}
    summary = _cached_summary(lists_dir, key, lists)
    if summary is None:
        raise RaihaDataError(
            f"no complete reference lists for these retrieval settings in {lists_dir}; build "
            "them with `python -m raiha.retrieve` or the datamodule's prepare_data (rank zero)"
        )
    return ReferencePipelineOutputs(lists, lists_dir, gallery, stores, summary, True)


def _open_stores(
    root: Path,
    folder: Path,
    records: Mapping[str, list[HarmonizationRecord]],
    gallery_paths: list[str],
    settings: RetrievalSettings,
) -> tuple[FeatureStore, dict[str, FeatureStore], dict[str, Any]]:
    """The finished gallery store and each split's composite store (or, unstored, its key)."""
    gallery_folder = folder / f"gallery-{image_list_sha256(gallery_paths)[:10]}"
    if not (gallery_folder / "manifest.json").is_file():
        raise RaihaDataError(
            f"no retrieval outputs for these settings under {folder}; build them with "
            "`python -m raiha.retrieve` or the datamodule's prepare_data (rank zero)"
        )
    gallery = _open_store(gallery_folder, gallery_paths, settings, settings.compression)
    stores: dict[str, FeatureStore] = {}
    composite_keys: dict[str, Any] = {}
    for split, split_records in records.items():
        names = [record.composite for record in split_records]
        if settings.store_composites:
            stores[split] = _open_store(
                folder / f"composites-{split}-{image_list_sha256(names)[:10]}",
                names, settings, settings.composite_compression,
            )  # fmt: skip
            composite_keys[split] = stores[split].key
        else:
            composite_keys[split] = _unstored_key(settings, names)
    return gallery, stores, composite_keys


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

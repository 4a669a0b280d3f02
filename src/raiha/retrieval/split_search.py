"""Each split's exact scores for the reference pipeline: cached, or searched in parts.

:class:`SplitSearch` gives a split's scores from the score cache when it covers the rule
(:mod:`raiha.retrieval.search.score_cache`), else every rank of the job scores its parts of
the split's queries (:mod:`raiha.retrieval.query_parts`) with the searcher of
``settings.search`` and rank zero saves the merged scores. :func:`prepare_search` is rank
zero's step before the others search (the patch index built once).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from raiha.io.split_lists import HarmonizationRecord
from raiha.retrieval.list_search import (
    extracted_features,
    load_cached_scores,
    make_searcher,
    score_cache_location,
    score_split,
    stored_features,
)
from raiha.retrieval.query_parts import QueryParts, score_parts
from raiha.retrieval.search.patch_index import PatchIndex
from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.search.score_cache import CachedScores
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.store.feature_store import FeatureStore
from raiha.utils.rank_group import RankGroup

log = logging.getLogger(__name__)


def prepare_search(
    folder: Path,
    settings: RetrievalSettings,
    gallery: FeatureStore,
    composite_keys: Mapping[str, Any],
    records: Mapping[str, list[HarmonizationRecord]],
    rebuild: bool,
    group: RankGroup,
) -> None:
    """Rank zero, before the other ranks search: build the patch index once (they load it)
    and, on ``rebuild``, drop the score parts of an earlier job."""
    if rebuild:
        for split, split_records in records.items():
            query_parts(folder, settings, gallery, composite_keys[split], split_records, split).remove()
    if group.world_size > 1 and settings.search in ("indexed", "batched"):
        patch_index(gallery, settings)


def query_parts(
    folder: Path,
    settings: RetrievalSettings,
    gallery: FeatureStore,
    composite_key: Any,
    records: list[HarmonizationRecord],
    split: str,
) -> QueryParts:
    """The split's score parts: ``lists/parts-<split>-c<eps_c>-<key>/``."""
    path, key = score_cache_location(folder, settings, gallery, composite_key, records, split)
    parts_folder = path.parent / path.name.replace("scores-", "parts-").removesuffix(".safetensors")
    return QueryParts(parts_folder, key, len(records), settings.query_part_size)


class SplitSearch:
    """Each split's scores: from the score cache when it covers the rule, else searched in
    parts by every rank (the searcher built once, on the first split that needs it)."""

    def __init__(
        self,
        root: Path,
        folder: Path,
        gallery: FeatureStore,
        make_extractor: Callable[[], Any],
        settings: RetrievalSettings,
        config: RetrievalConfig,
        group: RankGroup,
        progress: bool,
    ) -> None:
        self.root, self.folder, self.gallery = root, folder, gallery
        self.make_extractor, self.extractor = make_extractor, None
        self.settings, self.config, self.group, self.progress = settings, config, group, progress
        self.searcher: Any = None

    def scores(
        self,
        split: str,
        records: list[HarmonizationRecord],
        composite_store: FeatureStore | None,
        composite_key: Any,
        rebuild: bool,
    ) -> tuple[CachedScores | None, bool]:
        """The split's scores and whether they came from the cache; searched scores reach
        rank zero only (None on the other ranks, which write nothing)."""
        settings, config = self.settings, self.config
        scores_path, scores_key = score_cache_location(
            self.folder, settings, self.gallery, composite_key, records, split
        )
        scores = None if rebuild else load_cached_scores(scores_path, scores_key, config)
        if scores is not None:
            log.info("%s: lists derived from the cached scores %s", split, scores_path.name)
            return scores, True
        parts = query_parts(self.folder, settings, self.gallery, composite_key, records, split)
        searched = settings.search_config()  # the rule, or a lower low end (retrieval.search_low)

        def score_range(start: int, end: int, part_key: str) -> CachedScores:
            chosen = records[start:end]
            self.searcher = self.searcher or make_searcher_for(self.gallery, settings)
            if composite_store is not None:
                features = stored_features(chosen, composite_store)
            else:
                self.extractor = self.extractor or self.make_extractor()
                features = extracted_features(chosen, self.extractor, self.root, settings)
            return score_split(split, features, len(chosen), self.searcher, searched, self.root,
                               settings, self.progress, part_key)  # fmt: skip

        score_parts(parts, searched, self.group, score_range)  # every rank, then a barrier
        if not self.group.is_zero:
            return None, False  # rank zero merges (and then removes) the parts
        scores = parts.merge(searched)
        scores.save(scores_path)
        parts.remove()
        return scores, False


def make_searcher_for(gallery: FeatureStore, settings: RetrievalSettings) -> Any:
    """The searcher of ``settings.search`` (with the gallery's patch index where it uses one)."""
    indexed = settings.search in ("indexed", "batched")
    index = patch_index(gallery, settings) if indexed else None
    return make_searcher(gallery, settings.search, index, settings.search_device)


def patch_index(gallery: FeatureStore, settings: RetrievalSettings) -> PatchIndex:
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

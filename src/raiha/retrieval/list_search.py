"""Score every composite of a split once and turn the scores into reference-list entries.

:func:`score_split` keeps each composite's exact scores at one eps_c
(:class:`~raiha.retrieval.search.score_cache.CachedScores`); :func:`split_entries` makes the
entries of any rule those scores cover, so an eps_a sweep searches once.

Four exact search paths give the same lists (``RetrievalSettings.search``):

- ``brute_force``: :func:`raiha.retrieval.search.rule.brute_force_search` (scores every image).
- ``indexed``: :func:`raiha.retrieval.search.patch_index.indexed_search` (a patch index prunes
  images first; for galleries too large for memory).
- ``batched``: :class:`raiha.retrieval.search.batched.BatchedSearcher` (the patch index
  and many queries at a time on ``retrieval.search_device``, e.g. a GPU).
- ``prefilter`` (:class:`ContentPrefilter`): the gallery's normalised content is held in
  memory and one matrix product per query finds the images whose content score can
  reach ``eps_c``; only those are scored exactly (the illumination clause is the costly
  part and most images already fail the content clause). A margin of ``1e-4`` keeps the
  candidates a superset of the valid references.

Scores from ``prefilter`` and ``brute_force`` cover every eps_a / range at their eps_c (their
candidates do not depend on it); those of ``indexed`` and ``batched`` cover low ends at or
above the searched one (their candidates are pruned by it). ``indexed`` scores all of its
candidates here (no early stop at ``max_refs``: a later rule may need the others).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_mask
from raiha.io.reference_lists import ReferenceEntry
from raiha.io.split_lists import HarmonizationRecord
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.grids import mask_to_cells
from raiha.retrieval.features.query import RetrievalQuery, normalise_path
from raiha.retrieval.search.batched import BatchedSearcher
from raiha.retrieval.search.patch_index import PatchIndex, indexed_search
from raiha.retrieval.search.rule import (
    PreparedQuery,
    RetrievalConfig,
    RetrievedRef,
    brute_force_search,
    prepare_query,
    query_for_gallery,
    score_indices,
    select_refs,
)
from raiha.retrieval.search.score_cache import CachedScores, passing
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.store.extraction import ImageFeatureBatcher
from raiha.retrieval.store.feature_store import FeatureStore

log = logging.getLogger(__name__)

PREFILTER_MARGIN = 1e-4  # candidates: content score >= eps_c - margin (fp32 error is ~1e-6)
EMPTY_REASONS = ("no_valid_reference", "degenerate_mask", "unreadable")
UNSCORED = ("unreadable", "degenerate_mask")  # composites without a query (cached as 1, 2)
COMPOSITE_REMEDY = "fix it, or set retrieval.skip_unreadable=true to write it with no references"

# (record, content [L, C] or None, appearance [L, D] or None)
FeatureItem = tuple[HarmonizationRecord, Tensor | None, Tensor | None]


class ContentPrefilter:
    """The gallery's unit content vectors in memory, ``[N * L, C]`` float32."""

    def __init__(self, gallery: FeatureStore, block_size: int = 256) -> None:
        self.gallery = gallery
        self.cells = gallery.grid_size[0] * gallery.grid_size[1]
        blocks = [
            F.normalize(
                gallery.content_rows(range(s, min(s + block_size, len(gallery)))).float(), dim=-1
            )
            for s in range(0, len(gallery), block_size)
        ]  # each [n, L, C]
        self.content = torch.cat(blocks).reshape(len(gallery) * self.cells, -1)  # [N * L, C]

    def candidates(self, prepared: PreparedQuery, eps_c: float) -> Tensor:
        """Ascending indices ``[n]`` of the images whose content score may reach ``eps_c``."""
        best = (prepared.fg_content @ self.content.T).amax(dim=0)  # [N * L]
        best = best.reshape(len(self.gallery), self.cells).amax(dim=1)  # [N]
        return torch.nonzero(best >= eps_c - PREFILTER_MARGIN).flatten()

    def search(self, query: RetrievalQuery, config: RetrievalConfig) -> list[RetrievedRef]:
        """The rule's valid references, as :func:`brute_force_search` returns them."""
        prepared = prepare_query(query_for_gallery(query, self.gallery), self.gallery.grid_size)
        candidates = self.candidates(prepared, config.eps_c)
        if candidates.numel() == 0:
            return []
        content_scores, illumination_scores = score_indices(
            prepared, self.gallery, candidates.tolist(), config.eps_c
        )
        paths = self.gallery.image_paths
        return select_refs(
            candidates, content_scores, illumination_scores, paths, config, prepared.exclude_paths
        )


def stored_features(
    records: Sequence[HarmonizationRecord], store: FeatureStore
) -> Iterator[FeatureItem]:
    """The composites' grids from their store (None for composites the store skipped).

    Content comes back in the extractor's space (a compressed store maps its codes back
    through its basis), so the gallery's own compression applies to it as to any query.
    """
    position = {path: index for index, path in enumerate(store.image_paths)}
    for record in records:
        index = position.get(record.composite)
        if index is None:
            yield record, None, None
        else:
            yield record, store.source_content(index), store.appearance(index)


def extracted_features(
    records: Sequence[HarmonizationRecord],
    extractor: DenseFeatureExtractor,
    root: Path,
    settings: RetrievalSettings,
) -> Iterator[FeatureItem]:
    """The composites' grids extracted batch by batch, without a store."""
    batcher = ImageFeatureBatcher(
        extractor, settings.hsv, settings.image_size, device=settings.device,
        batch_size=settings.batch_size, num_workers=settings.num_workers, image_root=root,
        what="composite", remedy=COMPOSITE_REMEDY,
        precision=settings.extraction_precision,
    )  # fmt: skip
    unreadable = "skip" if settings.skip_unreadable else "raise"
    names = [record.composite for record in records]
    with batcher:
        position = 0
        for batch in batcher.batches(names, unreadable):
            for row in batch.rows:
                record = records[position]
                position += 1
                if row is None:
                    yield record, None, None
                else:
                    yield record, batch.content[row], batch.appearance[row]


def _query_mask(record: HarmonizationRecord, root: Path, skip_unreadable: bool) -> Tensor | None:
    """The composite's mask ``[H, W]`` (bool), or None when unreadable and skipping is allowed."""
    try:
        return torch.from_numpy(load_mask(root / record.mask))
    except RaihaDataError:
        if not skip_unreadable:
            raise
        log.warning(
            "composite %s gets no references: mask %s is unreadable", record.composite, record.mask
        )
        return None


def _queries(
    features: Iterator[FeatureItem], grid: tuple[int, int], root: Path, settings: RetrievalSettings
) -> Iterator[tuple[HarmonizationRecord, RetrievalQuery | None, str | None]]:
    """Each composite's query, or None and why it has none (``unreadable``, ``degenerate_mask``)."""
    height, width = grid
    for record, content, appearance in features:
        mask = None if content is None else _query_mask(record, root, settings.skip_unreadable)
        fg_cells = None if mask is None else mask_to_cells(mask, (height, width))  # [h, w]
        if content is None or appearance is None or fg_cells is None:
            yield record, None, "unreadable"
        elif not fg_cells.any() or fg_cells.all():
            yield record, None, "degenerate_mask"  # no foreground or no background cell
        else:
            query = RetrievalQuery(
                content=content.float().reshape(height, width, -1),  # [h, w, C]
                appearance=appearance.float().reshape(height, width, -1),  # [h, w, D]
                fg_cells=fg_cells,
                exclude_paths=(record.real,),
            )
            yield record, query, None


def _scores(
    searcher: Any, queries: list[RetrievalQuery], config: RetrievalConfig
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per query: its candidates ``[m]`` and their exact content and illumination scores ``[m]``."""
    if isinstance(searcher, BatchedSearcher):
        return searcher.score_batch(searcher.prepare(queries), config)
    return [searcher.scores(query, config) for query in queries]


def vouched_low(searcher: Any, config: RetrievalConfig) -> float:
    """The lowest illumination low end whose rules the scores of a search at ``config`` decide:
    the rule's own where candidates are pruned by it (patch index, half precision), else -inf."""
    if isinstance(searcher, BatchedSearcher) or searcher.index is not None:
        return config.eps_a_bounds[0]
    return -math.inf


def score_split(
    split: str,
    features: Iterator[FeatureItem],
    total: int,
    searcher: Any,
    config: RetrievalConfig,
    root: Path,
    settings: RetrievalSettings,
    progress: bool,
    key: str = "",
) -> CachedScores:
    """Score every composite of a split once at ``config``'s eps_c and low end (list order).

    Composites without a query get an empty slice and ``unscored`` code
    ``1 + UNSCORED.index(reason)``; :func:`split_entries` turns the scores into any
    covered rule's entries.
    """
    batch_size = getattr(searcher, "query_batch", 32)
    low = vouched_low(searcher, config)
    empty = (torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0))
    rows: list[tuple[Tensor, Tensor, Tensor]] = []
    codes: list[int] = []
    pending: list[tuple[int, RetrievalQuery]] = []

    def flush() -> None:
        found = _scores(searcher, [query for _, query in pending], config) if pending else []
        for (position, _), row in zip(pending, found, strict=True):
            rows[position] = passing(*row, config.eps_c, low)  # pruned now: bounded memory
        pending.clear()

    columns = (TextColumn(f"retrieval {split}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(split, total=total)
        for _, query, reason in _queries(features, searcher.grid_size, root, settings):
            codes.append(0 if reason is None else 1 + UNSCORED.index(reason))
            rows.append(empty)
            if query is not None:
                pending.append((len(rows) - 1, query))
            if len(pending) >= batch_size:
                flush()
            bar.advance(task)
        flush()
    unscored = torch.tensor(codes, dtype=torch.int8)
    return CachedScores.from_rows(rows, config.eps_c, low, unscored, key)


def split_entries(
    records: Sequence[HarmonizationRecord],
    scores: CachedScores,
    config: RetrievalConfig,
    paths: Sequence[str],
) -> tuple[list[ReferenceEntry], dict[str, Any]]:
    """Entries in list order and counts (``composites``, ``empty`` with reasons, ``refs``) of
    ``config``'s lists, from the scores of :func:`score_split` (which must cover ``config``)."""
    if scores.num_queries != len(records) or scores.unscored is None:
        raise ValueError(
            f"scores of {scores.num_queries} composites cannot make the list of {len(records)}"
        )
    excluded = [frozenset({normalise_path(record.real)}) for record in records]
    entries: list[ReferenceEntry] = []
    counts: dict[str, Any] = {"composites": len(records), "empty": 0, **dict.fromkeys(EMPTY_REASONS, 0)}
    found = scores.lists(config, paths, excluded)
    for record, refs, code in zip(records, found, scores.unscored.tolist(), strict=True):
        reason = UNSCORED[code - 1] if code else (None if refs else "no_valid_reference")
        if reason is not None:
            counts[reason] += 1
            counts["empty"] += 1
        rounded = [[round(r.content_score, 4), round(r.illumination_score, 4)] for r in refs]
        paths_of = [ref.path for ref in refs]
        entries.append(ReferenceEntry(record.composite, record.mask, paths_of, {"scores": rounded}))
    counts["refs"] = sum(len(entry.refs) for entry in entries)
    counts["mean_refs"] = round(counts["refs"] / max(1, len(entries)), 3)
    return entries, counts


class _Searcher:
    """``search(query, config)`` by ``prefilter``, ``indexed`` or ``brute_force``, and the gallery grid."""

    def __init__(self, gallery: FeatureStore, method: str, index: PatchIndex | None) -> None:
        self.gallery, self.method, self.index = gallery, method, index
        self.grid_size = gallery.grid_size
        self.prefilter = ContentPrefilter(gallery) if method == "prefilter" else None

    def scores(self, query: RetrievalQuery, config: RetrievalConfig) -> tuple[Tensor, Tensor, Tensor]:
        """Candidates ``[m]`` (every image that may satisfy ``config``) and their exact scores."""
        prepared = prepare_query(query_for_gallery(query, self.gallery), self.grid_size)
        if self.prefilter is not None:
            candidates = self.prefilter.candidates(prepared, config.eps_c)
        elif self.index is not None:
            candidates = self.index.candidates(prepared, config, self.gallery.image_paths)
        else:
            candidates = torch.arange(len(self.gallery))
        content, illumination = score_indices(
            prepared, self.gallery, candidates.tolist(), config.eps_c
        )
        return candidates, content, illumination

    def search(self, query: RetrievalQuery, config: RetrievalConfig) -> list[RetrievedRef]:
        if self.prefilter is not None:
            return self.prefilter.search(query, config)
        if self.index is not None:
            return indexed_search(query, self.gallery, self.index, config)
        return brute_force_search(query, self.gallery, config)


def make_searcher(
    gallery: FeatureStore, method: str, index: PatchIndex | None = None, device: str = "auto"
) -> _Searcher | BatchedSearcher:
    """A searcher over ``gallery``: ``prefilter``, ``indexed`` (needs ``index``), ``batched``
    (on ``device``; uses ``index`` when given) or ``brute_force``."""
    if method == "indexed" and index is None:
        raise ValueError("indexed search needs the gallery's patch index")
    if method == "batched":
        return BatchedSearcher(gallery, index, device=device)
    return _Searcher(gallery, method, index if method == "indexed" else None)


def score_cache_location(
    folder: Path,
    settings: RetrievalSettings,
    gallery: Any,
    composite_key: Any,
    records: Sequence[HarmonizationRecord],
    split: str,
) -> tuple[Path, str]:
    """``lists/scores-<split>-c<eps_c>-<hash>.safetensors`` and the key it holds: the stores'
    keys (extractor, weights, HSV, size, compression, image lists), the split's records
    (masks, own real images), eps_c and whether unreadable composites are skipped."""
    key = short_hash(
        {
            "gallery": short_hash(gallery.key, 16),
            "queries": short_hash(composite_key, 16),
            "records": short_hash([(r.composite, r.mask, r.real) for r in records], 16),
            "eps_c": settings.eps_c,
            "skip_unreadable": settings.skip_unreadable,
        },
        16,
    )
    return folder / "lists" / f"scores-{split}-c{settings.eps_c:g}-{key[:8]}.safetensors", key


def load_cached_scores(path: Path, key: str, config: RetrievalConfig) -> CachedScores | None:
    """The cached scores in ``path`` when they were computed for ``key`` and cover ``config``."""
    if not path.is_file():
        return None
    try:
        scores = CachedScores.load(path)
    except Exception as error:  # a damaged cache file is searched again, not trusted
        log.warning("ignoring the unreadable score cache %s (%s)", path, error)
        return None
    if scores.key != key or not scores.covers(config):
        return None
    return scores

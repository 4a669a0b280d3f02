"""A split's queries scored in parts: ranks share the work, and a killed job resumes.

The composites of a split are cut into consecutive parts of ``part_size`` queries, dealt
out round robin to the job's ranks (:class:`~raiha.utils.rank_group.RankGroup`). Each rank
scores its parts (:func:`~raiha.retrieval.list_search.score_split`) and writes one
safetensors file per part, atomically:

    lists/parts-<split>-c<eps_c>-<key>/part-00003-of-00017.safetensors

A part's file holds its query range and the split's score key, so a rerun (same key,
any number of ranks) scores only the parts it lacks. Rank zero concatenates the parts
in order into the split's score cache: queries are scored independently, so the merged
scores, and the lists made from them, are the bytes a single process writes.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.search.score_cache import CachedScores
from raiha.utils.rank_group import RankGroup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryParts:
    """The parts of one split's search: ``total`` queries in parts of ``part_size``.

    ``key`` is the split's score key (stores, records, eps_c); ``folder`` holds the parts.
    """

    folder: Path
    key: str
    total: int
    part_size: int

    def __post_init__(self) -> None:
        if self.part_size < 1:
            raise ValueError(f"retrieval.query_part_size must be >= 1, got {self.part_size}")

    @property
    def num_parts(self) -> int:
        return max(1, -(-self.total // self.part_size))

    def bounds(self, part: int) -> tuple[int, int]:
        """The query range ``[start, end)`` of ``part``."""
        start = part * self.part_size
        return start, min(start + self.part_size, self.total)

    def path(self, part: int) -> Path:
        return self.folder / f"part-{part:05d}-of-{self.num_parts:05d}.safetensors"

    def part_key(self, part: int) -> str:
        start, end = self.bounds(part)
        return f"{self.key}:{start}-{end}"

    def load(self, part: int, config: RetrievalConfig) -> CachedScores | None:
        """The part's scores when its file is complete, for this key and range, and covers
        ``config``; else None (a damaged file is scored again, not trusted)."""
        path = self.path(part)
        if not path.is_file():
            return None
        try:
            scores = CachedScores.load(path)
        except Exception as error:  # noqa: BLE001 - any unreadable part is recomputed
            log.warning("scoring again the unreadable part %s (%s)", path, error)
            return None
        start, end = self.bounds(part)
        if scores.key != self.part_key(part) or scores.num_queries != end - start:
            return None
        return scores if scores.covers(config) else None

    def missing(self, config: RetrievalConfig, owned: Callable[[int], bool]) -> Iterator[int]:
        """The parts ``owned`` selects that have no usable file yet."""
        return (p for p in range(self.num_parts) if owned(p) and self.load(p, config) is None)

    def save(self, part: int, scores: CachedScores) -> Path:
        """Write the part's scores (atomic) under the part's key."""
        start, end = self.bounds(part)
        if scores.num_queries != end - start:
            raise ValueError(f"part {part} holds queries {start}-{end}, got {scores.num_queries} scored")
        return dataclasses.replace(scores, key=self.part_key(part)).save(self.path(part))

    def merge(self, config: RetrievalConfig) -> CachedScores:
        """Every part in order as the split's scores (keyed by :attr:`key`); raises naming the
        parts that are missing (a rank that failed: rerun the job, it resumes)."""
        parts = [self.load(part, config) for part in range(self.num_parts)]
        absent = [self.path(p).name for p, scores in enumerate(parts) if scores is None]
        if absent:
            raise RuntimeError(
                f"{len(absent)} of {self.num_parts} score parts in {self.folder} are missing or "
                f"unusable ({', '.join(absent[:3])}...): a rank stopped early; run the job again "
                "and it scores only the missing parts"
            )
        return CachedScores.concatenate([p for p in parts if p is not None], key=self.key)

    def remove(self) -> None:
        """Delete the parts (after the merged scores are saved)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def score_parts(
    parts: QueryParts,
    config: RetrievalConfig,
    group: RankGroup,
    score_range: Callable[[int, int, str], CachedScores],
) -> int:
    """Score this rank's missing parts (``score_range(start, end, part_key)``), each saved as
    it finishes; returns how many were scored. Every rank then waits for the others."""
    scored = 0
    for part in list(parts.missing(config, group.owns)):
        start, end = parts.bounds(part)
        log.info("rank %d: scoring part %d of %d (queries %d-%d)", group.rank, part + 1,
                 parts.num_parts, start, end)  # fmt: skip
        parts.save(part, score_range(start, end, parts.part_key(part)))
        scored += 1
    group.barrier()
    return scored

"""Score each (query, candidate) once; derive the lists of any eps_a / illumination-range rule.

The illumination score depends on eps_c (it gates the bg pairs) but not on eps_a or the
illumination range, and the candidates a search scores for a low end ``lo`` (patch-index
bounds, fp16 upper bounds) are a superset of those any rule with a low end ``>= lo``
needs: ``hi`` and ``max_refs`` never prune. So the exact scores of one search at
``(eps_c, lo)`` give, through :func:`~raiha.retrieval.search.rule.select_refs`, the
exact lists of every rule with the same eps_c and a low end ``>= lo``. A rule the cache
cannot vouch for (another eps_c, or a lower ``lo``) is searched, and its scores cached.
Only the pairs that can pass such a rule are kept (content score ``>= eps_c``,
illumination score ``>= lo``): a sweep's cache holds about its lists' references, not
every candidate. The reference pipeline keeps one file per split and eps_c
(:mod:`raiha.retrieval.pipeline`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from raiha.io.atomic_io import atomic_write
from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.batched import BatchedSearcher
from raiha.retrieval.search.rule import RetrievalConfig, RetrievedRef, select_refs


@dataclass(frozen=True)
class CachedScores:
    """Exact scores of every query's candidates at one eps_c, complete for low ends ``>= vouched_low``.

    ``offsets`` ``[Q + 1]``: query q's images are ``images[offsets[q]:offsets[q + 1]]``;
    ``images`` (int32), ``content``, ``illumination`` ``[M]``. ``unscored`` ``[Q]`` int8 (optional):
    0 for a searched query, else the caller's code for why it was not searched (its slice
    is empty). ``key``: what the scores were computed from, for the caller to check.
    """

    eps_c: float
    vouched_low: float
    offsets: Tensor
    images: Tensor
    content: Tensor
    illumination: Tensor
    unscored: Tensor | None = None
    key: str = ""

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[tuple[Tensor, Tensor, Tensor]],
        eps_c: float,
        vouched_low: float,
        unscored: Tensor | None = None,
        key: str = "",
    ) -> CachedScores:
        """Per query ``(images [m], content [m], illumination [m])``, kept where they may pass."""
        kept = [passing(*row, eps_c, vouched_low) for row in rows]
        counts = torch.tensor([0] + [len(images) for images, _, _ in kept])
        empty = (torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0))
        images, content, illumination = (torch.cat(column) for column in zip(*(kept or [empty])))
        return cls(
            eps_c, vouched_low, counts.cumsum(0), images.int(), content.float(),
            illumination.float(), unscored, key,
        )  # fmt: skip

    @classmethod
    def concatenate(cls, parts: Sequence[CachedScores], key: str = "") -> CachedScores:
        """The scores of consecutive query ranges as one (the parts' own keys are dropped).

        All parts share eps_c; the result vouches for the highest of their low ends."""
        if not parts:
            raise ValueError("no scores to concatenate")
        thresholds = {part.eps_c for part in parts}
        if len(thresholds) > 1:
            raise ValueError(f"scores at different eps_c {sorted(thresholds)} cannot be concatenated")
        shifts = torch.tensor([0] + [len(part.images) for part in parts[:-1]]).cumsum(0).tolist()
        offsets = torch.cat(
            [parts[0].offsets[:1]] + [part.offsets[1:] + shift for part, shift in zip(parts, shifts)]
        )  # [Q + 1]
        unscored = [part.unscored for part in parts]
        return cls(
            parts[0].eps_c, max(part.vouched_low for part in parts), offsets,
            torch.cat([part.images for part in parts]), torch.cat([part.content for part in parts]),
            torch.cat([part.illumination for part in parts]),
            None if any(u is None for u in unscored) else torch.cat(unscored), key,
        )  # fmt: skip

    @property
    def num_queries(self) -> int:
        return len(self.offsets) - 1

    def covers(self, rule: RetrievalConfig) -> bool:
        """Whether the cached candidates are a superset of ``rule``'s valid references."""
        low, _ = rule.eps_a_bounds
        return rule.eps_c == self.eps_c and low >= self.vouched_low

    def lists(
        self, rule: RetrievalConfig, paths: Sequence[str], excluded: Sequence[frozenset[str]]
    ) -> list[list[RetrievedRef]]:
        """``rule``'s lists, one per query (``excluded``: each query's own real image paths)."""
        if not self.covers(rule):
            raise ValueError(
                f"scores cached at eps_c={self.eps_c}, lo>={self.vouched_low} cannot "
                f"vouch for {rule}"
            )
        bounds = self.offsets.tolist()
        return [
            select_refs(
                self.images[start:end],
                self.content[start:end],
                self.illumination[start:end],
                paths,
                rule,
                exclude,
            )  # fmt: skip
            for start, end, exclude in zip(bounds, bounds[1:], excluded)
        ]

    def save(self, path: str | Path) -> Path:
        """One safetensors file (atomic)."""
        tensors = {
            "offsets": self.offsets, "images": self.images, "content": self.content,
            "illumination": self.illumination,
        }  # fmt: skip
        if self.unscored is not None:
            tensors["unscored"] = self.unscored
        metadata = {"eps_c": repr(self.eps_c), "low": repr(self.vouched_low), "key": self.key}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    @classmethod
    def load(cls, path: str | Path) -> CachedScores:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        return cls(
            float(metadata["eps_c"]), float(metadata["low"]), tensors["offsets"],
            tensors["images"], tensors["content"], tensors["illumination"],
            tensors.get("unscored"), metadata.get("key", ""),
        )  # fmt: skip


def passing(
    images: Tensor, content: Tensor, illumination: Tensor, eps_c: float, low: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The pairs ``[m]`` that may pass a rule at ``eps_c`` with a low end ``>= low``
    (compared as :func:`~raiha.retrieval.search.rule.select_refs` does)."""
    keep = content >= eps_c
    if low > -math.inf:
        keep &= illumination >= low
    return images[keep], content[keep], illumination[keep]


def score_queries(
    searcher: BatchedSearcher, queries: Sequence[RetrievalQuery], rule: RetrievalConfig
) -> CachedScores:
    """Search ``queries`` once at ``rule``'s eps_c and low end, keeping every exact score."""
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    batch = searcher.config.query_batch
    for start in range(0, len(queries), batch):
        prepared = searcher.prepare(queries[start : start + batch])
        parts += searcher.score_batch(prepared, rule)
    return CachedScores.from_rows(parts, rule.eps_c, rule.eps_a_bounds[0])


class ScoreCache:
    """Lists of many rules for one set of queries, each (query, candidate) scored once per eps_c."""

    def __init__(self, searcher: BatchedSearcher, queries: Sequence[RetrievalQuery]) -> None:
        self.searcher, self.queries = searcher, list(queries)
        self.excluded = [searcher.prepare([q])[0].exclude_paths for q in self.queries]
        self.scores: dict[float, CachedScores] = {}
        self.searches = 0  # how many times the queries were searched

    def prime(self, rules: Sequence[RetrievalConfig]) -> None:
        """Score once per eps_c at the lowest low end among ``rules`` (a sweep's single search)."""
        lowest: dict[float, float] = {}
        for rule in rules:
            low = rule.eps_a_bounds[0]
            lowest[rule.eps_c] = min(low, lowest.get(rule.eps_c, low))
        for threshold, low in lowest.items():
            cached = self.scores.get(threshold)
            if cached is None or cached.vouched_low > low:
                self._search(RetrievalConfig(threshold, eps_a=low))

    def _search(self, rule: RetrievalConfig) -> CachedScores:
        rule = replace(rule, max_refs=None)
        self.searches += 1
        scores = score_queries(self.searcher, self.queries, rule)
        self.scores[rule.eps_c] = scores
        return scores

    def lists(self, rule: RetrievalConfig) -> list[list[RetrievedRef]]:
        """``rule``'s lists for every query: from the cache, or by a search (then cached)."""
        cached = self.scores.get(rule.eps_c)
        if cached is None or not cached.covers(rule):
            cached = self._search(rule)
        return cached.lists(rule, self.searcher.gallery.image_paths, self.excluded)

"""Batched exact search: many queries at a time against gallery blocks on one device (CPU or GPU).

For a batch of queries:

1. **Candidates** ``[Q, N]``: the patch index's bounds for all queries at once
   (:class:`~raiha.retrieval.search.device_index.DeviceIndex`, on the device), or every
   image without an index; the queries' own real images are dropped.
2. **Scoring**, gallery block by block: the union of the batch's candidates in a block is
   read (or taken from the device-resident copy) once, then each query scores its own.

   - ``precision="exact"`` (the CPU default): :func:`~raiha.retrieval.search.rule.score_images`
     on the stored rows, fp32: these are the final scores.
   - ``precision="half"`` (the GPU default): fp16 tensor-core matmuls on unit rows give
     every score within ``HALF_MARGIN`` of the fp32 one (see :func:`half_scores`); a pair
     is *verified*, i.e. scored by ``score_images`` on the stored rows in fp32, when its
     upper bounds reach ``eps_c`` and the illumination range's low end. Every valid
     reference is verified, so the listed scores, the clauses near eps_c / eps_a and ties
     in the ranking are all decided by the fp32 scores of the brute force.
3. :func:`~raiha.retrieval.search.rule.select_refs` ranks and caps, as brute force does.

The lists equal :func:`~raiha.retrieval.search.rule.brute_force_search` on the same device
(tested on CPU, measured in ``benchmarks/retrieval.py``). Exact scores are computed in
blocks padded to ``verify_block`` images, the brute force's block size, so the device runs
the same matmul shapes as the brute force.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from raiha.retrieval.features.query import RetrievalQuery, normalise_path
from raiha.retrieval.search.device_index import DeviceIndex
from raiha.retrieval.search.patch_index import PatchIndex
from raiha.retrieval.search.rule import (
    PreparedQuery,
    RetrievalConfig,
    RetrievedRef,
    prepare_query,
    query_for_gallery,
    score_images,
    select_refs,
)
from raiha.retrieval.store.gallery import GalleryFeatures

SEARCH_DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "exact", "half")
# |fp16 cosine - fp32 cosine| of unit vectors: inputs rounded to fp16 (<= 2 * 2^-11), the
# fp16 output (<= 2^-11), fp32 accumulation (<= dim * 2^-24, 4.6e-5 at 768) and the fp32
# reference's own rounding (the same again): < 2e-3 at dim <= 4096; twice that for safety.
HALF_MARGIN = 4e-3
EXACT_MARGIN = 1e-4  # fp32 cosines computed in different block shapes differ by ~1e-6


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (cuda when available, else cpu), ``cpu`` or ``cuda[:i]``."""
    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.split(":")[0] not in SEARCH_DEVICES:
        raise ValueError(f"search device must be one of {SEARCH_DEVICES}, got {text!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"search device {text!r} asked for, but torch sees no CUDA device")
    return torch.device(text)


@dataclass(frozen=True)
class BatchedSearchConfig:
    """Batch sizes, precision and how much of the gallery stays on the device.

    Args:
        query_batch: queries searched together.
        gallery_block: gallery images scored together.
        precision: ``exact`` (fp32 only), ``half`` (fp16 candidates, fp32 verification) or
            ``auto`` (half on CUDA, exact on CPU).
        verify_block: images per exact-scoring call (the brute force's block size).
        score_block: images per scoring call in the scoring pass (None: 16 on CPU, 128 on
            CUDA; bounds the ``[n, B, L]`` cosine buffers).
        content_first: score the fg content clause of every candidate first (``F x L`` of
            the ``(F + B) x L`` patch pairs: 1/18 of a pair's FLOP at 32 x 32 fp16, 1/28 on
            ``pca_int8``) and the rest only for the images whose content score may reach
            eps_c (the content score plus a margin bounds the fp32 one).
        resident_bytes: keep the gallery's fp16 unit rows on the device when they take at
            most this many bytes and half the device's free memory (half precision;
            otherwise they are read block by block).
    """

    query_batch: int = 32
    gallery_block: int = 256
    precision: str = "auto"
    verify_block: int = 16
    score_block: int | None = None
    content_first: bool = True
    resident_bytes: int = 48 * 2**30

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if min(self.query_batch, self.gallery_block, self.verify_block) < 1:
            raise ValueError("query_batch, gallery_block and verify_block must be >= 1")


def half_scores(
    query: PreparedQuery, content: Tensor, appearance: Tensor, eps_c: float
) -> tuple[Tensor, Tensor]:
    """Upper bounds (fp32 ``[n]``) of the content and illumination scores from fp16 unit rows.

    ``query`` holds fp16 unit rows; ``content`` ``[n, L, C]`` and ``appearance`` ``[n, L, D]``
    are fp16 unit rows. A bg pair is gated in when its fp16 content cosine reaches
    ``eps_c - HALF_MARGIN`` (every pair the fp32 rule gates in is); both scores get
    ``+ HALF_MARGIN``.
    """
    fg_cos = torch.matmul(query.fg_content.unsqueeze(0), content.transpose(1, 2))  # [n, F, L]
    content_bound = fg_cos.amax(dim=(1, 2)).float() + HALF_MARGIN  # [n]
    del fg_cos
    bg_cos = torch.matmul(query.bg_content.unsqueeze(0), content.transpose(1, 2))  # [n, B, L]
    gate = bg_cos < eps_c - HALF_MARGIN  # [n, B, L]
    del bg_cos
    appearance_cos = torch.matmul(
        query.bg_appearance.unsqueeze(0), appearance.transpose(1, 2)
    )  # [n, B, L]
    gated = appearance_cos.masked_fill_(gate, -math.inf)
    return content_bound, gated.amax(dim=(1, 2)).float() + HALF_MARGIN


def content_bound(query: PreparedQuery, content: Tensor, half: bool) -> Tensor:
    """fp32 ``[n]``: upper bounds of the content scores of ``content`` ``[n, L, C]`` (fp16 unit
    rows if ``half``, else stored rows) for ``query`` (fp16 / fp32 unit rows)."""
    rows = content if half else F.normalize(content.float(), dim=-1)
    fg_cos = torch.matmul(query.fg_content.unsqueeze(0), rows.transpose(1, 2))  # [n, F, L]
    return fg_cos.amax(dim=(1, 2)).float() + (HALF_MARGIN if half else EXACT_MARGIN)


def _unit_half(rows: Tensor) -> Tensor:
    return F.normalize(rows.float(), dim=-1).half()


def _on(query: PreparedQuery, device: torch.device, half: bool) -> PreparedQuery:
    cast = (lambda t: t.to(device).half()) if half else (lambda t: t.to(device))
    return PreparedQuery(
        cast(query.fg_content), cast(query.bg_content), cast(query.bg_appearance),
        query.exclude_paths,
    )  # fmt: skip


class BatchedSearcher:
    """The rule for batches of queries over ``gallery`` on ``device``; see the module docstring."""

    def __init__(
        self,
        gallery: GalleryFeatures,
        index: PatchIndex | None = None,
        *,
        device: str | torch.device = "auto",
        config: BatchedSearchConfig | None = None,
    ) -> None:
        self.gallery = gallery
        self.grid_size = gallery.grid_size
        self.device = resolve_device(device)
        self.config = config or BatchedSearchConfig()
        precision = self.config.precision
        if precision == "auto":
            precision = "half" if self.device.type == "cuda" else "exact"
        self.half = precision == "half"
        self.query_batch = self.config.query_batch
        self.score_block = self.config.score_block or (128 if self.device.type == "cuda" else 16)
        if index is not None and index.num_images != len(gallery):
            raise ValueError(
                f"the index covers {index.num_images} images but the gallery has {len(gallery)}; rebuild the index"
            )
        self.index = None if index is None else DeviceIndex(index, self.device)
        self._positions: dict[str, list[int]] = {}
        for position, path in enumerate(gallery.image_paths):
            self._positions.setdefault(normalise_path(path), []).append(position)
        self._resident: tuple[Tensor, Tensor] | None = None
        if self.half:
            self._resident = self._load_resident()
        # verified: pairs scored again in fp32 (exact precision: pairs whose scores lie
        # within 2 * HALF_MARGIN of passing, the ones a half-precision pass would verify)
        # scored: pairs scored in full (candidates whose content bound reaches eps_c)
        self.stats = {"queries": 0, "candidates": 0, "scored": 0, "verified": 0}

    def _load_resident(self) -> tuple[Tensor, Tensor] | None:
        """The whole gallery as fp16 unit rows on the device, if it fits ``resident_bytes``."""
        count = len(self.gallery)
        first_c, first_a = self.gallery.content_rows([0]), self.gallery.appearance_rows([0])
        per_image = 2 * (first_c[0].numel() + first_a[0].numel())
        budget = self.config.resident_bytes
        if self.device.type == "cuda":  # leave half the free memory to the scoring buffers
            budget = min(budget, torch.cuda.mem_get_info(self.device)[0] // 2)
        if count * per_image > budget:
            return None
        parts: tuple[list[Tensor], list[Tensor]] = ([], [])
        for start in range(0, count, self.config.gallery_block):
            block = range(start, min(start + self.config.gallery_block, count))
            parts[0].append(_unit_half(self.gallery.content_rows(block).to(self.device)))
            parts[1].append(_unit_half(self.gallery.appearance_rows(block).to(self.device)))
        return torch.cat(parts[0]), torch.cat(parts[1])  # [N, L, C], [N, L, D]

    def _block_rows(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Rows ``[n, L, *]`` of ``images`` (ascending, on the device) for the scoring pass."""
        if self._resident is not None:
            return self._resident[0][images], self._resident[1][images]
        listed = images.tolist()
        content = self.gallery.content_rows(listed).to(self.device)
        appearance = self.gallery.appearance_rows(listed).to(self.device)
        if self.half:
            return _unit_half(content), _unit_half(appearance)
        return content, appearance

    def prepare(self, queries: Sequence[RetrievalQuery]) -> list[PreparedQuery]:
        """Queries in the gallery's feature space, split and normalised (fp32, on the device)."""
        return [
            _on(
                prepare_query(query_for_gallery(q, self.gallery), self.grid_size),
                self.device,
                False,
            )
            for q in queries
        ]

    def candidates(self, queries: Sequence[PreparedQuery], config: RetrievalConfig) -> Tensor:
        """bool ``[Q, N]`` on the device: the images each query scores (own real images dropped)."""
        if self.index is None:
            keep = torch.ones(len(queries), len(self.gallery), dtype=torch.bool, device=self.device)
        else:
            keep = self.index.candidates(queries, config)
        for row, query in enumerate(queries):
            for path in query.exclude_paths:
                keep[row, self._positions.get(path, [])] = False
        return keep

    def exact_scores(
        self, query: PreparedQuery, images: Sequence[int], eps_c: float
    ) -> tuple[Tensor, Tensor]:
        """fp32 scores ``[n]`` of ``images`` from the stored rows, in padded blocks of ``verify_block``."""
        block_size = self.config.verify_block
        content_scores, illumination_scores = [], []
        for start in range(0, len(images), block_size):
            block = list(images[start : start + block_size])
            padded = block + [block[-1]] * (block_size - len(block))
            content, illumination = score_images(
                query,
                self.gallery.content_rows(padded).to(self.device),
                self.gallery.appearance_rows(padded).to(self.device),
                eps_c,
            )
            content_scores.append(content[: len(block)].cpu())
            illumination_scores.append(illumination[: len(block)].cpu())
        if not content_scores:
            return torch.empty(0), torch.empty(0)
        return torch.cat(content_scores), torch.cat(illumination_scores)

    def score_batch(
        self, queries: Sequence[PreparedQuery], config: RetrievalConfig
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per query: ascending image indices ``[m]`` and their exact fp32 content and
        illumination scores ``[m]``, for every image that may satisfy ``config`` (a superset
        of its valid references; ``max_refs`` and ``hi`` are not used to prune)."""
        keep = self.candidates(queries, config)  # [Q, N]
        low, _ = config.eps_a_bounds
        threshold = config.eps_c
        scored: list[list[tuple[Tensor, Tensor, Tensor]]] = [[] for _ in queries]
        cast = [_on(q, self.device, True) for q in queries] if self.half else list(queries)
        self.stats["queries"] += len(queries)
        self.stats["candidates"] += int(keep.sum())
        for start in range(0, len(self.gallery), self.config.gallery_block):
            block_keep = keep[:, start : start + self.config.gallery_block]  # [Q, n]
            used = torch.nonzero(block_keep.any(dim=0)).flatten()  # [u]
            if used.numel() == 0:
                continue
            content, appearance = self._block_rows(used + start)  # [u, L, C], [u, L, D]
            score = half_scores if self.half else score_images
            for row in torch.nonzero(block_keep.any(dim=1)).flatten().tolist():
                local = torch.nonzero(block_keep[row, used]).flatten()  # positions in used
                if self.config.content_first:
                    local = self._content_passes(cast[row], content, local, threshold)
                for chunk in local.split(self.score_block):
                    c, a = score(cast[row], content[chunk], appearance[chunk], threshold)
                    scored[row].append(((used[chunk] + start).cpu(), c.cpu(), a.cpu()))
        return [self._finish(query, parts, threshold, low) for query, parts in zip(queries, scored)]

    def _content_passes(
        self, query: PreparedQuery, content: Tensor, local: Tensor, threshold: float
    ) -> Tensor:
        """The positions of ``local`` whose content score may reach ``threshold``."""
        passing = [
            chunk[content_bound(query, content[chunk], self.half) >= threshold]
            for chunk in local.split(4 * self.score_block)
        ]
        local = torch.cat(passing) if passing else local
        self.stats["scored"] += local.numel()
        return local

    def _finish(
        self, query: PreparedQuery, parts: list, threshold: float, low: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Concatenate a query's scored blocks; in half precision verify the passing ones in fp32."""
        if not parts:
            return torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0)
        images, content, illumination = (torch.cat(column) for column in zip(*parts))
        if not self.half:  # count the pairs a half-precision pass would have verified
            near = (content >= threshold - 2 * HALF_MARGIN) & (
                illumination >= low - 2 * HALF_MARGIN
            )
            self.stats["verified"] += int(near.sum())
            return images, content, illumination
        passing = images[(content >= threshold) & (illumination >= low)]  # upper bounds pass
        self.stats["verified"] += passing.numel()
        exact_content, exact_illumination = self.exact_scores(query, passing.tolist(), threshold)
        return passing, exact_content, exact_illumination

    def search_batch(
        self, queries: Sequence[RetrievalQuery], config: RetrievalConfig | None = None
    ) -> list[list[RetrievedRef]]:
        """The valid references of every query, as :func:`brute_force_search` lists them."""
        config = config or RetrievalConfig()
        results: list[list[RetrievedRef]] = []
        paths = self.gallery.image_paths
        for start in range(0, len(queries), self.config.query_batch):
            prepared = self.prepare(queries[start : start + self.config.query_batch])
            for query, (images, content, illumination) in zip(
                prepared, self.score_batch(prepared, config)
            ):
                results.append(
                    select_refs(images, content, illumination, paths, config, query.exclude_paths)
                )
        return results

    def search(self, query: RetrievalQuery, config: RetrievalConfig) -> list[RetrievedRef]:
        """One query (the ``search(query, config)`` interface of the list builder)."""
        return self.search_batch([query], config)[0]

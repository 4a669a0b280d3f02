"""The batched search (exact and half precision, with and without an index) equals brute force."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.batched import (
    HALF_MARGIN,
    BatchedSearchConfig,
    BatchedSearcher,
    _on,
    _unit_half,
    half_scores,
    resolve_device,
)
from raiha.retrieval.search.patch_index import PatchIndex
from raiha.retrieval.search.rule import RetrievalConfig, brute_force_search
from raiha.retrieval.store.gallery import InMemoryGallery
from tests.retrieval.test_patch_index import (
    CONFIGS,
    SMALL_INDEX,
    _planted_query,
    _random_gallery,
)

SEARCH_MODES = [
    pytest.param(precision, indexed, id=f"{precision}-{'index' if indexed else 'all'}")
    for precision in ("exact", "half")
    for indexed in (False, True)
]


def _searcher(gallery, precision: str, indexed: bool, **overrides) -> BatchedSearcher:  # type: ignore[no-untyped-def]
    index = PatchIndex.build(gallery, SMALL_INDEX) if indexed else None
    config = BatchedSearchConfig(
        query_batch=3, gallery_block=7, precision=precision, verify_block=5, score_block=4,
        **overrides,
    )  # fmt: skip
    return BatchedSearcher(gallery, index, device="cpu", config=config)


@pytest.mark.parametrize(("precision", "indexed"), SEARCH_MODES)
def test_batched_equals_brute_force_on_random_galleries(precision: str, indexed: bool) -> None:
    gallery = _random_gallery(0)
    queries = [_planted_query(gallery, seed) for seed in range(5)]
    searcher = _searcher(gallery, precision, indexed)
    found = 0
    for config in CONFIGS:
        expected = [brute_force_search(query, gallery, config, block_size=5) for query in queries]
        assert searcher.search_batch(queries, config) == expected
        found += sum(len(refs) for refs in expected)
    assert found > 10  # the planted matches make the comparison meaningful


def _tilted(direction: int, other: int, cosine: float, dim: int = 6) -> torch.Tensor:
    """A unit vector at cosine ``cosine`` to basis vector ``direction`` (rest on ``other``)."""
    vector = torch.zeros(dim, dtype=torch.float64)
    vector[direction], vector[other] = cosine, math.sqrt(1.0 - cosine**2)
    return vector.float()


CONTENT_OFFSETS = [-1e-3, -3e-4, -1e-7, 0.0, 1e-7, 3e-4, 1e-3]
APPEARANCE_OFFSETS = [-1e-3, -1e-7, 0.0, 5e-4]
GATE_OFFSETS = [-5e-4, 0.0, 5e-4]


def _threshold_gallery() -> InMemoryGallery:
    """fp32 images whose content, gating and illumination cosines lie at and within 1e-3 of
    eps_c = 0.7 / eps_a = 0.9, each built twice (tied rankings, broken by index)."""
    images = []
    for content in CONTENT_OFFSETS:
        for appearance in APPEARANCE_OFFSETS:
            for gate in GATE_OFFSETS:
                patches = [  # (content, appearance) of the 4 cells
                    (_tilted(0, 3, 0.7 + content), _tilted(4, 5, 0.2)),
                    (_tilted(1, 3, 0.7 + gate), _tilted(2, 5, 0.9 + appearance)),
                    (_tilted(5, 4, 0.9), _tilted(5, 4, 0.9)),
                    (_tilted(4, 5, 0.99), _tilted(3, 4, 0.3)),
                ]
                image = (torch.stack([c for c, _ in patches]), torch.stack([a for _, a in patches]))
                images += [image, image]
    content = torch.stack([c for c, _ in images])  # [N, 4, 6]
    appearance = torch.stack([a for _, a in images])  # [N, 4, 6]
    return InMemoryGallery(content, appearance, [f"g/{i}.jpg" for i in range(len(images))], (2, 2))


THRESHOLD_QUERY = RetrievalQuery(  # fg cell 0: e0; bg cells: content e1, appearance e2
    content=torch.eye(6)[[0, 1, 1, 1]].reshape(2, 2, 6),
    appearance=torch.eye(6)[[4, 2, 2, 2]].reshape(2, 2, 6),
    fg_cells=torch.tensor([[True, False], [False, False]]),
)


@pytest.mark.parametrize(("precision", "indexed"), SEARCH_MODES)
def test_scores_at_and_near_the_thresholds_and_ties(precision: str, indexed: bool) -> None:
    gallery = _threshold_gallery()
    searcher = _searcher(gallery, precision, indexed)
    for config in [RetrievalConfig(), RetrievalConfig(eps_a_range=(0.9, 0.9005))]:
        expected = brute_force_search(THRESHOLD_QUERY, gallery, config)
        found = searcher.search_batch([THRESHOLD_QUERY], config)[0]
        assert found == expected
        scores = [ref.content_score for ref in expected]
        # refs at the boundary are in, refs just below are out, ties are broken by index
        assert min(scores) <= 0.7 + 1e-6 and 0 < len(expected) < len(gallery) / 2
        assert any(abs(ref.illumination_score - 0.9) < 1e-6 for ref in expected)
        pairs = [(a.index, b.index) for a, b in zip(expected, expected[1:])]
        assert any(b == a + 1 for a, b in pairs)  # a tie, ranked by index


def test_half_scores_bound_the_fp32_scores_within_the_margin() -> None:
    gallery = _random_gallery(3, count=20, dim=64, hist_dim=12)
    searcher = _searcher(gallery, "half", False)
    prepared = searcher.prepare([_planted_query(gallery, 3)])
    (images, content, illumination) = _searcher(gallery, "exact", False).score_batch(
        prepared, RetrievalConfig(eps_c=0.2, eps_a=-1.0)
    )[0]
    bound_c, bound_a = half_scores(
        _on(prepared[0], torch.device("cpu"), True),
        _unit_half(gallery.content[images]),
        _unit_half(gallery.appearance[images]),
        0.2,
    )
    assert bool((bound_c >= content).all()) and bool((bound_c - content <= 2 * HALF_MARGIN).all())
    finite = illumination.isfinite()
    assert bool((bound_a[finite] >= illumination[finite]).all())


def test_index_prunes_and_half_precision_verifies_few() -> None:
    gallery = _random_gallery(1)
    queries = [_planted_query(gallery, seed) for seed in range(4)]
    searcher = _searcher(gallery, "half", True)
    searcher.search_batch(queries, RetrievalConfig())
    stats = searcher.stats
    assert stats["queries"] == 4 and stats["candidates"] < 4 * len(gallery)
    assert stats["verified"] <= stats["scored"] < stats["candidates"]  # content first prunes


@pytest.mark.parametrize("precision", ["exact", "half"])
def test_scoring_without_the_content_pass_gives_the_same_lists(precision: str) -> None:
    gallery = _random_gallery(8)
    queries = [_planted_query(gallery, seed) for seed in range(3)]
    config = RetrievalConfig(eps_c=0.5, eps_a=0.6)
    plain = _searcher(gallery, precision, False, content_first=False)
    assert plain.search_batch(queries, config) == _searcher(gallery, precision, False).search_batch(
        queries, config
    )
    assert plain.stats["scored"] == 0


def test_device_and_config_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="search device must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        BatchedSearchConfig(precision="int8")
    gallery = _random_gallery(2)
    index = PatchIndex.build(gallery, SMALL_INDEX)
    smaller = InMemoryGallery(
        gallery.content[:30], gallery.appearance[:30], gallery.paths[:30], gallery.grid
    )
    with pytest.raises(ValueError, match="covers 40 images but the gallery has 30"):
        BatchedSearcher(smaller, index, device="cpu")


def test_streamed_half_gallery_equals_resident() -> None:
    gallery = _random_gallery(4)
    queries = [_planted_query(gallery, seed) for seed in range(3)]
    resident = _searcher(gallery, "half", True)
    streamed = _searcher(gallery, "half", True, resident_bytes=0)
    assert resident._resident is not None and streamed._resident is None
    config = RetrievalConfig(eps_c=0.5, eps_a=0.6)
    assert streamed.search_batch(queries, config) == resident.search_batch(queries, config)
    assert F.normalize(gallery.content.float(), dim=-1).shape == resident._resident[0].shape

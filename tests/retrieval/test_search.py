"""The retrieval rule on hand-made 2 x 2 grids whose cosines are exact (dyadic unit vectors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raiha.retrieval.features.query import RetrievalQuery, make_query
from raiha.retrieval.search.rule import (
    RetrievalConfig,
    brute_force_search,
    prepare_query,
    score_images,
)
from raiha.retrieval.store.gallery import InMemoryGallery

E = torch.eye(5)  # e1..e5 as E[0]..E[4]
THREE_QUARTER_ON_1 = torch.tensor(
    [0.75, 0.5, 0.25, 0.25, 0.25]
)  # unit norm exactly; cos with e1 = 0.75
THREE_QUARTER_ON_2 = torch.tensor(
    [0.5, 0.75, 0.25, 0.25, 0.25]
)  # cos with e2 = 0.75, with e1 = 0.5
AFTER_075 = float(np.nextafter(np.float32(0.75), np.float32(1.0)))  # cosines are fp32

# query: fg cell 0 has content e1; bg cells 1..3 have content e2 and appearance e1
QUERY = RetrievalQuery(
    content=torch.stack([E[0], E[1], E[1], E[1]]).reshape(2, 2, 5),
    appearance=torch.stack([E[2], E[0], E[0], E[0]]).reshape(2, 2, 5),
    fg_cells=torch.tensor([[True, False], [False, False]]),
)

# each gallery image: 4 patches of (content, appearance)
GALLERY_PATCHES = {
    "valid": [(E[0], E[2]), (E[1], E[0]), (E[2], E[1]), (E[3], E[1])],
    "content_fails": [(E[1], E[0]), (E[2], E[0]), (E[3], E[0]), (E[4], E[0])],
    "appearance_fails": [(E[0], E[2]), (E[1], E[1]), (E[2], E[1]), (E[3], E[1])],
    "appearance_on_wrong_content": [(E[0], E[2]), (E[1], E[1]), (E[2], E[0]), (E[3], E[0])],
    "content_at_075": [(THREE_QUARTER_ON_1, E[2]), (E[1], E[0]), (E[2], E[1]), (E[3], E[1])],
    "appearance_at_075": [(E[0], E[2]), (E[1], THREE_QUARTER_ON_1), (E[2], E[1]), (E[3], E[1])],
    "bg_content_at_075": [(E[0], E[2]), (THREE_QUARTER_ON_2, E[0]), (E[2], E[1]), (E[3], E[1])],
}
NAMES = list(GALLERY_PATCHES)


@pytest.fixture(scope="module")
def gallery() -> InMemoryGallery:
    content = torch.stack(
        [torch.stack([c for c, _ in patches]) for patches in GALLERY_PATCHES.values()]
    )
    appearance = torch.stack(
        [torch.stack([a for _, a in patches]) for patches in GALLERY_PATCHES.values()]
    )
    return InMemoryGallery(content, appearance, [f"real/{name}.jpg" for name in NAMES], (2, 2))


def _names(refs: list) -> list[str]:
    return [NAMES[ref.index] for ref in refs]


def test_each_clause_fails_alone(gallery: InMemoryGallery) -> None:
    prepared = prepare_query(QUERY)
    content, illumination = score_images(prepared, gallery.content, gallery.appearance, 0.7)
    scores = dict(zip(NAMES, zip(content.tolist(), illumination.tolist())))
    assert scores["valid"] == (1.0, 1.0)
    assert scores["content_fails"] == (0.0, 1.0)  # illumination fine, content not
    assert scores["appearance_fails"] == (1.0, 0.0)  # bg content matches, its appearance does not
    assert scores["appearance_on_wrong_content"] == (
        1.0,
        0.0,
    )  # appearance matches only a non-matching patch
    assert scores["content_at_075"] == (0.75, 1.0)
    assert scores["appearance_at_075"] == (1.0, 0.75)
    assert scores["bg_content_at_075"] == (1.0, 1.0)
    refs = brute_force_search(QUERY, gallery)
    # ranked by content then illumination then index
    assert _names(refs) == ["valid", "bg_content_at_075", "content_at_075"]
    assert refs[0].path == "real/valid.jpg" and refs[2].content_score == 0.75


def test_eps_c_is_inclusive(gallery: InMemoryGallery) -> None:
    at = brute_force_search(QUERY, gallery, RetrievalConfig(eps_c=0.75))
    assert _names(at) == ["valid", "bg_content_at_075", "content_at_075"]
    above = brute_force_search(QUERY, gallery, RetrievalConfig(eps_c=AFTER_075))
    # content_at_075 fails its content clause; bg_content_at_075 loses its only gated bg pair
    assert _names(above) == ["valid"]


def test_eps_a_is_inclusive(gallery: InMemoryGallery) -> None:
    at = brute_force_search(QUERY, gallery, RetrievalConfig(eps_a=0.75))
    assert _names(at) == ["valid", "bg_content_at_075", "appearance_at_075", "content_at_075"]
    above = brute_force_search(QUERY, gallery, RetrievalConfig(eps_a=AFTER_075))
    assert "appearance_at_075" not in _names(above)


def test_eps_a_range_is_half_open(gallery: InMemoryGallery) -> None:
    inside = brute_force_search(QUERY, gallery, RetrievalConfig(eps_a_range=(0.7, 0.8)))
    assert _names(inside) == ["appearance_at_075"]
    assert brute_force_search(QUERY, gallery, RetrievalConfig(eps_a_range=(0.7, 0.75))) == []
    assert _names(
        brute_force_search(QUERY, gallery, RetrievalConfig(eps_a_range=(0.75, 0.9)))
    ) == ["appearance_at_075"]
    low = brute_force_search(QUERY, gallery, RetrievalConfig(eps_a_range=(-1.0, 0.5)))
    assert _names(low) == [
        "appearance_fails",
        "appearance_on_wrong_content",
    ]  # content clause still required
    with pytest.raises(ValueError, match="lo < hi"):
        RetrievalConfig(eps_a_range=(0.9, 0.8))
    with pytest.raises(ValueError, match="max_refs"):
        RetrievalConfig(max_refs=0)


def test_own_image_is_excluded_and_cap_keeps_best(gallery: InMemoryGallery) -> None:
    own = RetrievalQuery(
        QUERY.content, QUERY.appearance, QUERY.fg_cells, exclude_paths=("./real/valid.jpg",)
    )
    assert _names(brute_force_search(own, gallery)) == ["bg_content_at_075", "content_at_075"]
    capped = brute_force_search(QUERY, gallery, RetrievalConfig(max_refs=2))
    assert _names(capped) == ["valid", "bg_content_at_075"]


def test_make_query_uses_touched_cells(gallery: InMemoryGallery) -> None:
    mask = torch.zeros(8, 8)
    mask[3, 3] = 1.0  # one pixel in the top-left cell
    query = make_query(QUERY.content, QUERY.appearance, mask, exclude_paths=["real/valid.jpg"])
    assert torch.equal(query.fg_cells, QUERY.fg_cells)
    assert _names(brute_force_search(query, gallery)) == ["bg_content_at_075", "content_at_075"]


def test_bad_queries_are_explained(gallery: InMemoryGallery) -> None:
    with pytest.raises(ValueError, match="no foreground cell"):
        brute_force_search(
            RetrievalQuery(QUERY.content, QUERY.appearance, torch.zeros(2, 2, dtype=torch.bool)),
            gallery,
        )
    with pytest.raises(ValueError, match="no background"):
        brute_force_search(
            RetrievalQuery(QUERY.content, QUERY.appearance, torch.ones(2, 2, dtype=torch.bool)),
            gallery,
        )
    small = RetrievalQuery(QUERY.content[:1], QUERY.appearance[:1], QUERY.fg_cells[:1])
    with pytest.raises(
        ValueError, match=r"query grid \(1, 2\) differs from the gallery grid \(2, 2\)"
    ):
        brute_force_search(small, gallery)

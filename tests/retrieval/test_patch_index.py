"""The indexed search equals brute force (random and clustered galleries, planted matches)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.patch_index import PatchIndex, PatchIndexConfig, indexed_search
from raiha.retrieval.search.rule import (
    RetrievalConfig,
    brute_force_search,
    prepare_query,
    score_images,
)
from raiha.retrieval.search.spherical_kmeans import spherical_kmeans
from raiha.retrieval.store.gallery import InMemoryGallery

GRID = (4, 4)
PATCHES = GRID[0] * GRID[1]
SMALL_INDEX = PatchIndexConfig(
    content_clusters=12, appearance_clusters=6, kmeans_iterations=5, block_size=7
)
CONFIGS = [
    RetrievalConfig(),
    RetrievalConfig(eps_a_range=(0.7, 0.8)),
    RetrievalConfig(eps_a_range=(0.8, 0.9)),
    RetrievalConfig(max_refs=2),
    RetrievalConfig(eps_c=0.5, eps_a=0.6),
]


def _unit(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=generator), dim=-1)


def _random_gallery(
    seed: int, count: int = 40, dim: int = 24, hist_dim: int = 10
) -> InMemoryGallery:
    generator = torch.Generator().manual_seed(seed)
    content = _unit((count, PATCHES, dim), generator).half()
    appearance = F.normalize(
        torch.rand(count, PATCHES, hist_dim, generator=generator) ** 4, dim=-1
    ).half()
    return InMemoryGallery(content, appearance, [f"g/{i}.jpg" for i in range(count)], GRID)


def _planted_query(gallery: InMemoryGallery, seed: int) -> RetrievalQuery:
    """Query patches copied from a few gallery images with noise of several strengths."""
    generator = torch.Generator().manual_seed(1000 + seed)
    content = _unit((PATCHES, gallery.content.shape[-1]), generator)
    appearance = F.normalize(
        torch.rand(PATCHES, gallery.appearance.shape[-1], generator=generator), dim=-1
    )
    fg = torch.zeros(PATCHES, dtype=torch.bool)
    fg[:5] = True
    sources = torch.randperm(len(gallery), generator=generator)[:8].tolist()
    for slot, (image, noise) in enumerate(zip(sources, [0.0, 0.3, 0.5, 0.7, 0.9, 1.1, 0.6, 0.4])):
        patch = int(torch.randint(PATCHES, (1,), generator=generator))
        fg_slot, bg_slot = slot % 5, 5 + slot
        content[fg_slot] = gallery.content[image, patch].float() + noise * _unit(
            (content.shape[-1],), generator
        )
        content[bg_slot] = gallery.content[
            image, (patch + 1) % PATCHES
        ].float() + 0.3 * noise * _unit((content.shape[-1],), generator)
        appearance[bg_slot] = gallery.appearance[
            image, (patch + 1) % PATCHES
        ].float() + 0.2 * noise * torch.rand(appearance.shape[-1], generator=generator)
    return RetrievalQuery(
        content.reshape(*GRID, -1),
        appearance.reshape(*GRID, -1),
        fg.reshape(GRID),
        exclude_paths=(gallery.paths[sources[0]],),
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_indexed_equals_brute_force_on_random_galleries(seed: int) -> None:
    gallery = _random_gallery(seed)
    index = PatchIndex.build(gallery, SMALL_INDEX)
    query = _planted_query(gallery, seed)
    found_any = False
    for config in CONFIGS:
        exact = brute_force_search(query, gallery, config, block_size=5)
        assert indexed_search(query, gallery, index, config, block_size=3) == exact
        found_any |= bool(exact)
        assert gallery.paths.index(query.exclude_paths[0]) not in [ref.index for ref in exact]
    assert found_any  # the planted matches make the comparison meaningful


def test_filter_never_drops_an_image_that_reaches_the_threshold() -> None:
    gallery = _random_gallery(7, count=30, dim=8, hist_dim=6)  # low dim: many high cosines
    index = PatchIndex.build(gallery, SMALL_INDEX)
    generator = torch.Generator().manual_seed(3)
    query_rows = _unit((6, 8), generator)
    true_max = torch.einsum(
        "qc,nlc->nql", query_rows, F.normalize(gallery.content.float(), dim=-1)
    ).amax(dim=(1, 2))
    for threshold in [0.3, 0.6, 0.8, 0.9, 0.95, float(true_max.max())]:
        allowed = index.content.images_within(query_rows, threshold, len(gallery))
        assert bool(allowed[true_max >= threshold].all())


def test_clustered_gallery_is_pruned_and_still_exact() -> None:
    generator = torch.Generator().manual_seed(0)
    concepts = _unit((32, 64), generator)  # semantic "concepts"; each image shows 2 of them
    count = 60
    picks = torch.randint(32, (count, PATCHES), generator=generator) % 2 + 2 * torch.randint(
        16, (count, 1), generator=generator
    )
    content = F.normalize(
        concepts[picks] + 0.35 * _unit((count, PATCHES, 64), generator), dim=-1
    ).half()
    tones = F.normalize(torch.rand(8, 12, generator=generator) ** 6, dim=-1)
    appearance = F.normalize(
        tones[picks % 8] + 0.05 * torch.rand(count, PATCHES, 12, generator=generator), dim=-1
    ).half()
    gallery = InMemoryGallery(content, appearance, [f"g/{i}.jpg" for i in range(count)], GRID)
    index = PatchIndex.build(gallery, PatchIndexConfig(content_clusters=32, appearance_clusters=8))
    query = RetrievalQuery(
        content=content[5].float().reshape(*GRID, -1),
        appearance=appearance[5].float().reshape(*GRID, -1),
        fg_cells=torch.arange(PATCHES).reshape(GRID) < 4,
    )
    candidates = index.candidates(prepare_query(query), RetrievalConfig())
    exact = brute_force_search(query, gallery)
    assert {ref.index for ref in exact} <= set(candidates.tolist())
    assert len(candidates) < count / 2  # images without the query's concepts are pruned
    assert indexed_search(query, gallery, index) == exact and exact[0].index == 5


def test_block_composition_does_not_change_scores() -> None:
    gallery = _random_gallery(4)
    prepared = prepare_query(_planted_query(gallery, 4))
    together = score_images(prepared, gallery.content[:9], gallery.appearance[:9], 0.7)
    alone = score_images(prepared, gallery.content[6:7], gallery.appearance[6:7], 0.7)
    assert torch.equal(together[0][6:7], alone[0]) and torch.equal(together[1][6:7], alone[1])


def test_save_load_and_size_check(tmp_path: Path) -> None:
    gallery = _random_gallery(5)
    index = PatchIndex.build(gallery, SMALL_INDEX)
    loaded = PatchIndex.load(index.save(tmp_path / "index.safetensors"))
    assert (
        loaded.num_images == 40 and loaded.config == SMALL_INDEX and loaded.nbytes == index.nbytes
    )
    query = _planted_query(gallery, 5)
    prepared = prepare_query(query)
    assert torch.equal(
        loaded.candidates(prepared, RetrievalConfig()),
        index.candidates(prepared, RetrievalConfig()),
    )
    smaller = InMemoryGallery(
        gallery.content[:30], gallery.appearance[:30], gallery.paths[:30], GRID
    )
    with pytest.raises(ValueError, match="covers 40 images but the gallery has 30"):
        indexed_search(query, smaller, index)


class CountingGallery(InMemoryGallery):
    """Counts the images whose content is read (to see the capped search stop early)."""

    rows_read = 0

    def content_rows(self, indices):  # type: ignore[no-untyped-def]
        self.rows_read += len(list(indices))
        return super().content_rows(indices)


def test_capped_search_stops_early_and_matches_brute_force() -> None:
    generator = torch.Generator().manual_seed(1)
    count, dim = 66, 32
    base = _unit((PATCHES, dim), generator)
    # 6 near-duplicates of the query, then 60 valid but weaker images shifted along one direction
    shift = torch.cat([torch.zeros(6), torch.full((count - 6,), 0.8)])[:, None, None] * _unit(
        (1, 1, dim), generator
    )
    content = F.normalize(
        base[None] + shift + 0.1 * _unit((count, PATCHES, dim), generator), dim=-1
    ).half()
    appearance = F.normalize(
        torch.ones(count, PATCHES, 6) + 0.05 * torch.rand(count, PATCHES, 6, generator=generator),
        dim=-1,
    ).half()
    gallery = CountingGallery(content, appearance, [f"g/{i}.jpg" for i in range(count)], GRID)
    index = PatchIndex.build(gallery, PatchIndexConfig(content_clusters=32, appearance_clusters=4))
    query = RetrievalQuery(
        base.reshape(*GRID, dim),
        appearance[0].float().reshape(*GRID, 6),
        torch.arange(PATCHES).reshape(GRID) < 6,
    )
    everything = brute_force_search(query, gallery)
    assert len(everything) > 20  # many valid refs: the cap matters
    gallery.rows_read = 0
    capped = indexed_search(query, gallery, index, RetrievalConfig(max_refs=3), block_size=4)
    assert capped == everything[:3]
    assert (
        gallery.rows_read <= 8
    )  # two blocks of 4 of the 66 candidates: the 6 near-duplicates, then stop


def test_spherical_kmeans_finds_separated_clusters() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(8)[:5]  # 5 orthogonal directions
    points = F.normalize(
        centres.repeat_interleave(30, dim=0) + 0.05 * torch.randn(150, 8, generator=generator),
        dim=-1,
    )
    centroids = spherical_kmeans(points, 5, 5, generator)
    assert centroids.shape == (5, 8)
    assert torch.allclose(centroids.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert (centroids @ centres.T).amax(dim=0).min() > 0.99  # every true centre is found

"""The weight-free ``synthetic`` extractor: grid layout, determinism, illumination invariance,
identity and material discrimination (scenes relit with the world's own render functions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raiha.retrieval import available_extractors, create_extractor
from raiha.retrieval.features.synthetic_extractor import SyntheticWorldExtractor
from raiha.world import (
    SyntheticWorldConfig,
    build_catalogue,
    plan_world,
    relight,
    shading_field,
)
from raiha.world.render import render_albedo

WORLD = SyntheticWorldConfig(
    image_size=64, num_train=40, num_test=0, num_identities=30, num_illuminants=6
)


@pytest.fixture(scope="module")
def extractor() -> SyntheticWorldExtractor:
    return create_extractor("synthetic")


@pytest.fixture(scope="module")
def scenes() -> list[dict]:
    """Each scene's albedo relit by the 6 illuminants (uint8-quantised, in [-1, 1]) and its labels."""
    catalogue, specs = build_catalogue(WORLD), plan_world(WORLD)
    drawn = []
    for spec in specs[:16]:
        albedo, labels = render_albedo(spec, catalogue)
        shading = shading_field(WORLD.image_size, spec.shading_angle, WORLD.shading_strength)
        lit = [relight(albedo, catalogue.illuminant_rgb[k], shading) for k in range(6)]
        pixels = np.round(np.stack(lit) * 255.0) / 255.0  # [6, S, S, 3] like a decoded image
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() * 2.0 - 1.0  # [6, 3, S, S]
        classes = [int(catalogue.identity_classes[obj.identity]) for obj in spec.objects]
        drawn.append({"images": images, "labels": labels, "spec": spec, "classes": classes})
    return drawn


def _cells(extractor: SyntheticWorldExtractor, images: torch.Tensor) -> torch.Tensor:
    grid = extractor(images)  # [B, h, w, C]
    return F.normalize(grid.reshape(grid.shape[0], -1, grid.shape[-1]), dim=-1)  # [B, L, C]


def _object_cells(labels: np.ndarray, object_index: int) -> torch.Tensor:
    """bool [L]: cells fully covered by one object."""
    inside = torch.from_numpy(labels == object_index).float()[None, None]  # [1, 1, S, S]
    return (F.avg_pool2d(inside, 8) > 0.99).reshape(-1)


def test_registered_with_grid_at_one_eighth(extractor: SyntheticWorldExtractor) -> None:
    assert "synthetic" in available_extractors()
    for size in (48, 64):
        images = torch.rand(3, 3, size, size) * 2 - 1
        grid = extractor(images)
        assert grid.shape == (3, size // 8, size // 8, extractor.feature_dim)
        assert extractor.grid_size(size) == (size // 8, size // 8)
        assert torch.isfinite(grid).all()


def test_deterministic_and_rebuilt_from_its_config(scenes: list[dict]) -> None:
    first, second = create_extractor("synthetic"), create_extractor("synthetic")
    images = scenes[0]["images"][:2]
    assert torch.equal(first(images), second(images))
    assert torch.equal(first(images), first(images))
    rebuilt = create_extractor("synthetic", **first.config())
    assert first.cache_config() == rebuilt.cache_config()
    other_seed = create_extractor("synthetic", seed=1)
    assert other_seed.cache_config() != first.cache_config()
    assert not torch.equal(other_seed(images), first(images))


def test_object_cells_are_invariant_to_the_illuminant(
    extractor: SyntheticWorldExtractor, scenes: list[dict]
) -> None:
    checked = 0
    for scene in scenes:
        features = _cells(extractor, scene["images"])  # [6, L, C]
        for index in range(len(scene["classes"])):
            cells = _object_cells(scene["labels"], index) & (features[0].norm(dim=-1) > 0)
            if not cells.any():  # an object smaller than a clean cell
                continue
            cosines = (features[0, cells][None] * features[1:, cells]).sum(-1)  # [5, n]
            assert cosines.mean() >= 0.9, (scene["spec"].name, index, cosines)
            checked += 1
    assert checked >= 8


def test_different_identities_fall_below_eps_c(
    extractor: SyntheticWorldExtractor, scenes: list[dict]
) -> None:
    vectors, identities = [], []
    for scene in scenes:
        features = _cells(extractor, scene["images"][:1])[0]  # [L, C]
        for index, obj in enumerate(scene["spec"].objects):
            cells = _object_cells(scene["labels"], index) & (features.norm(dim=-1) > 0)
            if cells.any():
                vectors.append(F.normalize(features[cells].mean(0), dim=0))
                identities.append(obj.identity)
    vectors_t = torch.stack(vectors)  # [n, C]
    same = torch.tensor(identities)[:, None] == torch.tensor(identities)[None]
    cosines = vectors_t @ vectors_t.T
    assert cosines[~same].mean() < 0.3
    assert (cosines[~same] < 0.7).float().mean() > 0.9


def test_background_cells_tell_materials_apart_under_any_light(
    extractor: SyntheticWorldExtractor, scenes: list[dict]
) -> None:
    scene = next(s for s in scenes if s["spec"].materials[0] != s["spec"].materials[1])
    features = _cells(extractor, scene["images"])  # [6, L, C]
    objects = torch.from_numpy(scene["labels"] >= 0).float()[None, None]  # [1, 1, S, S]
    near_object = F.max_pool2d(F.max_pool2d(objects, 8), 3, stride=1, padding=1)  # 3 x 3 cells
    clear = (near_object == 0).reshape(-1) & (features[0].norm(dim=-1) > 0)
    assert clear.sum() >= 4
    same_place = (features[0, clear][None] * features[1:, clear]).sum(-1)  # [5, n]
    assert same_place.min() >= 0.95
    rows = torch.arange(64) // 8  # cell row of each cell
    horizon_row = scene["spec"].horizon // 8
    wall = clear & (rows < horizon_row - 1)
    floor = clear & (rows > horizon_row + 1)
    assert wall.any() and floor.any()
    across = features[0, wall] @ features[0, floor].T  # two materials: unrelated cells
    assert across.max() < 0.7


def test_bad_input_is_named(extractor: SyntheticWorldExtractor) -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        extractor(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="edge_low"):
        SyntheticWorldExtractor(edge_low=0.5, edge_high=0.4)


def test_signature_of_a_rank_one_cell_and_silence_elsewhere(
    extractor: SyntheticWorldExtractor,
) -> None:
    """Known answers of the structure-tensor signature on constructed cells ``[1, 9, 1, 4]``."""
    d1 = torch.tensor([0.8, -0.3, 0.5])
    d2 = torch.tensor([-0.2, 0.9, 0.4])
    pure = torch.outer(d1, d1)
    mixed = torch.outer(d1, d1) + torch.outer(d2, d2)
    cells = torch.stack([pure, pure, mixed, pure]).reshape(4, 9).T[None, :, None, :] * 5.0
    mass = torch.tensor([5.0, 5.0, 5.0, 1.0])[None, None, None, :]  # last: too few pairs
    embedded = extractor.signature_cells(cells, mass)[0, :, 0].T  # [4, M]
    expected = F.normalize(torch.cos(d1 @ extractor.contrast_projection.T), dim=0)
    assert torch.allclose(embedded[0], expected, atol=1e-5)
    flipped = extractor.signature_cells(cells[..., :1], mass[..., :1])  # +d and -d: same cell
    assert torch.allclose(flipped[0, :, 0, 0], expected, atol=1e-5)
    assert embedded[2].abs().max() == 0  # two colour pairs: no signature
    assert embedded[3].abs().max() == 0  # below min_contrast
    other = F.normalize(torch.cos((d1 + 0.2) @ extractor.contrast_projection.T), dim=0)
    assert torch.dot(other, expected) < 0.3  # 0.35 apart: far beyond the kernel

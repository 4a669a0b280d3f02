"""Feature compression: quantisation bounds, PCA and random bases, sizes, query encoding,
and exact indexed == brute-force search on compressed on-disk stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.patch_index import PatchIndex, PatchIndexConfig, indexed_search
from raiha.retrieval.search.rule import RetrievalConfig, brute_force_search, prepare_query
from raiha.retrieval.store.compression import (
    APPEARANCE_LEVELS,
    CONTENT_LEVELS,
    CompressionConfig,
    FeatureCompressor,
    PcaFitter,
    dequantize_rows,
    quantize_rows,
    random_orthogonal_basis,
    resolve_compression,
    store_bytes_per_image,
)
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter

GRID = (4, 4)
PATCHES = GRID[0] * GRID[1]
KIB_256 = 256 * 1024


def test_quantisation_round_trip_bounds() -> None:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(50, 64, generator=generator) * torch.logspace(-3, 3, 50)[:, None]
    rows[7] = 0.0  # an all-zero row
    codes, scales = quantize_rows(rows, CONTENT_LEVELS)
    assert int(codes.abs().max()) == CONTENT_LEVELS and float(scales[7]) == 0.0
    decoded = dequantize_rows(codes.to(torch.int8), scales)  # [50, 64]
    assert bool(((decoded - rows).abs() <= scales[:, None] / 2 * (1 + 1e-5)).all())
    assert torch.equal(decoded[7], torch.zeros(64))
    relative = (decoded - rows).norm(dim=-1) / rows.norm(dim=-1).clamp(min=1e-30)
    bound = 64**0.5 / (2 * CONTENT_LEVELS)  # |y - y^| <= sqrt(k) max|y| / 254 <= sqrt(k) |y| / 254
    assert float(relative.max()) <= bound
    histograms = F.normalize(torch.rand(30, 108, generator=generator) ** 6, dim=-1)
    hist_codes, hist_scales = quantize_rows(histograms, APPEARANCE_LEVELS)
    assert int(hist_codes.min()) >= 0 and int(hist_codes.max()) == APPEARANCE_LEVELS
    hist_decoded = dequantize_rows(hist_codes.to(torch.uint8), hist_scales)
    assert bool(((hist_decoded - histograms).abs() <= hist_scales[:, None] / 2 * (1 + 1e-5)).all())
    cosines = F.cosine_similarity(hist_decoded, histograms, dim=-1)
    assert float(cosines.min()) > 0.999


def test_pca_keeps_a_low_rank_gallery_and_its_cosines() -> None:
    generator = torch.Generator().manual_seed(1)
    subspace = random_orthogonal_basis(48, 6, seed=3)  # [6, 48]
    rows = torch.randn(500, 6, generator=generator) @ subspace + 0.5 * subspace[0]  # [500, 48]
    fitter = PcaFitter(48)
    fitter.add(rows[:300].half())
    fitter.add(rows[300:])
    basis = fitter.basis(6)  # [6, 48]
    assert torch.allclose(basis @ basis.T, torch.eye(6), atol=1e-5)
    assert fitter.kept_energy(basis) > 0.999 and fitter.count == 500
    assert fitter.kept_energy(fitter.basis(2)) < 0.9  # fewer axes than the rank lose energy
    assert torch.equal(basis, fitter.basis(6))  # deterministic, signs fixed
    projected = rows @ basis.T  # [500, 6]
    original_cos = F.normalize(rows, dim=-1) @ F.normalize(rows, dim=-1).T
    projected_cos = F.normalize(projected, dim=-1) @ F.normalize(projected, dim=-1).T
    assert torch.allclose(original_cos, projected_cos, atol=2e-3)  # the fp16 half adds error


def test_random_basis_is_orthonormal_and_seeded() -> None:
    basis = random_orthogonal_basis(32, 8, seed=5)
    assert basis.shape == (8, 32)
    assert torch.allclose(basis @ basis.T, torch.eye(8), atol=1e-6)
    assert torch.equal(basis, random_orthogonal_basis(32, 8, seed=5))
    assert not torch.equal(basis, random_orthogonal_basis(32, 8, seed=6))


def test_config_parsing_and_key_fields() -> None:
    assert CompressionConfig.parse("pca_int8:64") == CompressionConfig("pca_int8", 64)
    assert CompressionConfig.parse(None).method == "fp16"
    assert CompressionConfig("fp16", content_dim=7).to_dict() == {"method": "fp16"}
    assert "fit_images" not in CompressionConfig("random_int8").to_dict()
    assert CompressionConfig.parse(CompressionConfig().to_dict()) == CompressionConfig()
    with pytest.raises(ValueError, match="'zip'.*fp16"):
        CompressionConfig.parse("zip")


def test_paper_scale_store_is_below_256_kib_per_image() -> None:
    default = store_bytes_per_image((32, 32), 768, 108, CompressionConfig())
    assert default == 1024 * (128 + 4 + 108 + 4) == 249_856
    assert default < 256_000 < KIB_256  # below 256 KB in either unit
    fp16 = store_bytes_per_image((32, 32), 768, 108, CompressionConfig("fp16"))
    assert fp16 == 2 * 1024 * (768 + 108) and fp16 / default > 7
    random = store_bytes_per_image((32, 32), 768, 108, CompressionConfig("random_int8"))
    assert random == default
    assert store_bytes_per_image((32, 32), 64, 108, CompressionConfig()) == 1024 * (64 + 116)


def test_auto_compresses_only_stores_over_the_budget() -> None:
    assert resolve_compression("auto", (32, 32), 768, 108) == CompressionConfig()
    assert resolve_compression("auto", (16, 16), 192, 108).method == "fp16"  # 153,600 bytes
    assert resolve_compression("auto", (4, 4), 8, 108).method == "fp16"
    assert resolve_compression("pca_int8:64", (4, 4), 8, 108).content_dim == 64
    assert resolve_compression(None, (32, 32), 768, 108).method == "fp16"


def test_compress_query_projects_passes_and_refuses() -> None:
    generator = torch.Generator().manual_seed(2)
    compressor = FeatureCompressor(CompressionConfig("random_int8", 8), 24)
    content = torch.randn(*GRID, 24, generator=generator)
    appearance = torch.rand(*GRID, 10, generator=generator)
    query = RetrievalQuery(content, appearance, torch.eye(4) > 0, ("a.jpg",))
    compressed = compressor.compress_query(query)
    assert compressed.content.shape == (*GRID, 8) and compressed.exclude_paths == ("a.jpg",)
    expected = content @ compressor.basis.T  # [h, w, k]
    step = expected.abs().amax(dim=-1, keepdim=True) / CONTENT_LEVELS
    assert bool(((compressed.content - expected).abs() <= step / 2 + 1e-6).all())
    assert compressor.compress_query(compressed) is compressed
    fp16 = FeatureCompressor(CompressionConfig("fp16"), 24)
    assert fp16.compress_query(query) is query
    wrong = RetrievalQuery(content[..., :20], appearance, query.fg_cells)
    with pytest.raises(ValueError, match="20 dims but the store was built from 24-dim"):
        compressor.compress_query(wrong)
    with pytest.raises(ValueError, match="negative"):
        compressor.encode(content[None], -appearance[None])
    with pytest.raises(ValueError, match="needs a fitted basis"):
        FeatureCompressor(CompressionConfig("pca_int8", 8), 24)


def _raw_gallery(seed: int, count: int = 40, dim: int = 24, hist_dim: int = 10) -> tuple:
    """Raw clustered content ``[N, L, C]`` (2 of 12 concepts per image, in a 10-dim
    subspace, plus noise) and peaked histograms ``[N, L, D]`` (one tone per concept)."""
    generator = torch.Generator().manual_seed(seed)
    concepts = torch.randn(12, 10, generator=generator) @ random_orthogonal_basis(dim, 10, seed)
    picks = torch.randint(2, (count, PATCHES), generator=generator) + 2 * torch.randint(
        6, (count, 1), generator=generator
    )  # [N, L]: concepts 2j and 2j + 1 in image slot j
    noise = torch.randn(count, PATCHES, dim, generator=generator)
    content = 3.0 * concepts[picks] + noise  # [N, L, C]
    tones = F.normalize(torch.rand(6, hist_dim, generator=generator) ** 6, dim=-1)
    appearance = tones[picks % 6] + 0.05 * torch.rand(count, PATCHES, hist_dim, generator=generator)
    return content, appearance


def _compressed_store(
    folder: Path, content: torch.Tensor, appearance: torch.Tensor, spec: str
) -> FeatureStore:
    names = [f"g/{i}.jpg" for i in range(content.shape[0])]
    config = CompressionConfig.parse(spec)
    writer = FeatureStoreWriter(
        folder, key={"test": spec}, image_paths=names, grid_size=GRID, content_dim=content.shape[-1],
        appearance_dim=appearance.shape[-1], shard_size=16, compression=config,
    )  # fmt: skip
    if writer.compressor is None:
        writer.set_compressor(FeatureCompressor.fit(config, content[::3]))
    for shard in writer.pending_shards():
        rows = slice(shard * 16, (shard + 1) * 16)
        writer.write_shard(shard, content[rows], appearance[rows], names[rows])
    return writer.finish()


def _planted_query(content: torch.Tensor, appearance: torch.Tensor, seed: int) -> RetrievalQuery:
    """Raw query: 2 fg and 6 bg patches copied (with noise of several strengths) from
    gallery patches, the other bg patches random."""
    generator = torch.Generator().manual_seed(1000 + seed)
    query_content = torch.randn(PATCHES, content.shape[-1], generator=generator)
    query_appearance = torch.rand(PATCHES, appearance.shape[-1], generator=generator)
    sources = torch.randperm(content.shape[0], generator=generator)[:8].tolist()
    for slot, (image, noise) in enumerate(zip(sources, [0.0, 0.5, 0.2, 0.4, 0.6, 0.8, 1.0, 0.3])):
        patch = int(torch.randint(PATCHES, (1,), generator=generator))
        target = slot if slot < 2 else slot + 2  # patches 0-1 are fg, 2-3 stay random bg
        query_content[target] = content[image, patch] + noise * torch.randn(
            content.shape[-1], generator=generator
        )
        query_appearance[target] = appearance[image, patch] + 0.1 * noise
    fg = (torch.arange(PATCHES) < 2).reshape(GRID)
    return RetrievalQuery(
        query_content.reshape(*GRID, -1),
        query_appearance.reshape(*GRID, -1),
        fg,
        (f"g/{sources[0]}.jpg",),
    )


CONFIGS = [
    RetrievalConfig(),
    RetrievalConfig(eps_a_range=(0.7, 0.8)),
    RetrievalConfig(max_refs=2),
    RetrievalConfig(eps_c=0.5, eps_a=0.6),
]


@pytest.mark.parametrize(
    ("seed", "spec"),
    [(0, "pca_int8:8"), (1, "pca_int8:8"), (2, "random_int8:12"), (3, "pca_int8:12")],
)
def test_indexed_equals_brute_force_on_compressed_stores(
    tmp_path: Path, seed: int, spec: str
) -> None:
    content, appearance = _raw_gallery(seed)
    store = _compressed_store(tmp_path / "store", content, appearance, spec)
    assert store.content_rows([0]).shape == (1, PATCHES, store.compression.content_dim)
    index = PatchIndex.build(
        store,
        PatchIndexConfig(
            content_clusters=12, appearance_clusters=6, kmeans_iterations=5, block_size=7
        ),
    )
    query = _planted_query(content, appearance, seed)
    found = 0
    for config in CONFIGS:
        exact = brute_force_search(
            query, store, config, block_size=5
        )  # raw query: compressed inside
        assert indexed_search(query, store, index, config, block_size=3) == exact
        assert brute_force_search(store.compress_query(query), store, config) == exact
        found += len(exact)
    assert found > 0  # the planted matches make the comparison meaningful
    candidates = index.candidates(prepare_query(store.compress_query(query)), RetrievalConfig())
    assert len(candidates) < len(store)  # the filter prunes: the index is exercised


def test_paper_layout_store_reports_and_uses_under_256_kib(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(4)
    content = torch.randn(2, 32 * 32, 768, generator=generator)  # [N, L, C] at the paper's grid
    appearance = F.normalize(torch.rand(2, 32 * 32, 108, generator=generator), dim=-1)
    names = ["a.jpg", "b.jpg"]
    writer = FeatureStoreWriter(
        tmp_path / "store", key={}, image_paths=names, grid_size=(32, 32), content_dim=768,
        appearance_dim=108, compression=CompressionConfig(fit_images=2),
    )  # fmt: skip
    writer.set_compressor(FeatureCompressor.fit(writer.compression, content))
    writer.write_shard(0, content, appearance, names)
    store = FeatureStore.open(tmp_path / "store")
    assert store.bytes_per_image == 249_856 < KIB_256
    on_disk = sum(path.stat().st_size for path in (tmp_path / "store").glob("*_00000.npy"))
    assert on_disk / 2 < store.bytes_per_image + 512  # plus the four .npy headers
    assert store.content_rows([1]).shape == (1, 1024, 128)


def test_semantic_grids_of_a_compressed_store_come_back_in_the_extractor_space(
    tmp_path: Path,
) -> None:
    """SGF needs the extractor's C channels: projected codes map back through the basis."""
    from raiha.data.references.semantic_grids import SemanticGridLookup

    content, appearance = _raw_gallery(5)  # [N, L, 24]: low-rank concepts plus noise
    store = _compressed_store(tmp_path / "store", content, appearance, "pca_int8:12")
    assert store.content(3).shape[-1] == 12
    restored = store.source_content(3)  # [L, 24]
    assert restored.shape == content[3].shape
    # the reconstruction keeps what the basis spans: far closer than dropping the content
    error = (restored - content[3]).norm() / content[3].norm()
    assert error < 0.6
    assert torch.allclose(store.compressor.project(restored[None])[0], store.content(3), atol=1e-4)
    grid = SemanticGridLookup([store]).grid("g/3.jpg")
    assert grid.shape == (content.shape[-1], *GRID)

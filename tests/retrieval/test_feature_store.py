"""Feature store: round trip (fp16 and compressed), resumption, mismatch detection,
unreadable and empty galleries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from raiha.io.errors import RaihaDataError
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig, hsv_patch_histograms
from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.store.compression import BASIS_FILE
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreMismatchError
from raiha.retrieval.store.store_builder import (
    build_feature_store,
    feature_store_key,
    load_gallery_image,
)

IMAGE_SIZE = 16


class ColourGridExtractor(DenseFeatureExtractor):
    """Weight-free test extractor: 4 x 4 average colours mapped to 8 dims; can fail on purpose."""

    name = "test_colour_grid"

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.feature_dim = 8
        self.register_buffer("projection", torch.linspace(-1, 1, 24).reshape(3, 8))
        self.calls = 0
        self.images_seen = 0
        self.fail_on_call = fail_on_call

    def grid_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        return (4, 4)

    def config(self) -> dict[str, Any]:
        return {"grid": 4}

    def forward(self, images: Tensor) -> Tensor:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        self.images_seen += images.shape[0]
        cells = F.adaptive_avg_pool2d(images, (4, 4)).permute(0, 2, 3, 1)  # [B, 4, 4, 3]
        return cells @ self.projection  # [B, 4, 4, 8]


def _write_images(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            folder / f"img{index}.png"
        )
        names.append(f"img{index}.png")
    return names


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "images"
    return root, _write_images(root, 5)


def _build(
    store: Path, root: Path, names: list[str], extractor: DenseFeatureExtractor, **kwargs: Any
) -> FeatureStore:
    options = {
        "image_size": IMAGE_SIZE,
        "batch_size": 2,
        "shard_size": 2,
        "image_root": root,
        "progress": False,
        "compression": "fp16",
    }
    return build_feature_store(store, names, extractor, **{**options, **kwargs})


def test_round_trip(tmp_path: Path, gallery: tuple[Path, list[str]]) -> None:
    root, names = gallery
    extractor = ColourGridExtractor()
    store = _build(tmp_path / "store", root, names, extractor)
    assert len(store) == 5 and store.image_paths == names and store.grid_size == (4, 4)
    assert store.bytes_per_image == 2 * 16 * (8 + HsvHistogramConfig().dim)
    image = load_gallery_image(root / names[3], IMAGE_SIZE)[None]  # [1, 3, 16, 16]
    expected_content = extractor(image).reshape(16, 8).half()
    expected_appearance = hsv_patch_histograms(image, (4, 4)).reshape(16, -1).half()
    assert store.content(3).dtype == torch.float16
    assert torch.equal(store.content(3), expected_content)
    assert torch.equal(store.appearance(3), expected_appearance)
    rows = store.content_rows([4, 0, 3])  # across shards, any order
    assert torch.equal(rows[2], expected_content) and rows.shape == (3, 16, 8)
    reopened = FeatureStore.open(tmp_path / "store", expected_key={"image_size": IMAGE_SIZE})
    assert torch.equal(reopened.appearance(3), expected_appearance)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    for field in ("compression", "source_content_dim", "basis"):  # a store from before compression
        del manifest[field]
    (tmp_path / "store" / "manifest.json").write_text(json.dumps(manifest))
    old = FeatureStore.open(tmp_path / "store")
    assert old.compression.method == "fp16" and torch.equal(old.content(3), expected_content)
    with pytest.raises(FeatureStoreMismatchError, match="image_size"):
        FeatureStore.open(tmp_path / "store", expected_key={"image_size": 32})


def test_reuse_when_complete(tmp_path: Path, gallery: tuple[Path, list[str]]) -> None:
    root, names = gallery
    _build(tmp_path / "store", root, names, ColourGridExtractor())
    again = ColourGridExtractor()
    store = _build(tmp_path / "store", root, names, again)
    assert again.calls == 0 and len(store) == 5


@pytest.mark.parametrize(("compression", "fit_calls"), [("fp16", 0), ("pca_int8:4", 3)])
def test_resume_after_interruption(
    tmp_path: Path, gallery: tuple[Path, list[str]], compression: str, fit_calls: int
) -> None:
    root, names = gallery
    with pytest.raises(KeyboardInterrupt):  # the PCA fit reads all 5 images (3 calls) first
        _build(
            tmp_path / "store",
            root,
            names,
            ColourGridExtractor(fail_on_call=fit_calls + 2),
            compression=compression,
        )  # dies in shard 1
    with pytest.raises(ValueError, match=r"incomplete \(1 of 3 shards\)"):
        FeatureStore.open(tmp_path / "store")
    kept_files = [tmp_path / "store" / "content_00000.npy"]
    kept_files += [tmp_path / "store" / BASIS_FILE] if fit_calls else []
    written_at = [file.stat().st_mtime_ns for file in kept_files]
    resumed = ColourGridExtractor()
    store = _build(tmp_path / "store", root, names, resumed, compression=compression)
    assert resumed.images_seen == 3  # shard 0 (2 images) and the fitted basis were kept
    assert [file.stat().st_mtime_ns for file in kept_files] == written_at
    fresh = _build(tmp_path / "fresh", root, names, ColourGridExtractor(), compression=compression)
    assert torch.equal(store.content_rows(range(5)), fresh.content_rows(range(5)))
    assert torch.equal(store.appearance_rows(range(5)), fresh.appearance_rows(range(5)))
    assert not list((tmp_path / "store").glob(".*.tmp"))  # no leftover temporary files


def test_other_settings_are_detected(tmp_path: Path, gallery: tuple[Path, list[str]]) -> None:
    root, names = gallery
    _build(tmp_path / "store", root, names, ColourGridExtractor())
    other_hsv = HsvHistogramConfig(hue_bins=6)
    with pytest.raises(FeatureStoreMismatchError, match="hsv: store has.*rebuild=True"):
        _build(tmp_path / "store", root, names, ColourGridExtractor(), hsv_config=other_hsv)
    with pytest.raises(FeatureStoreMismatchError, match="image_list_sha256"):
        _build(tmp_path / "store", root, names[:4], ColourGridExtractor())
    rebuilt = _build(
        tmp_path / "store", root, names, ColourGridExtractor(), hsv_config=other_hsv, rebuild=True
    )
    assert rebuilt.appearance_dim == other_hsv.dim and rebuilt.key["hsv"]["hue_bins"] == 6


@pytest.mark.parametrize("compression", ["fp16", "pca_int8:4"])
def test_unreadable_image_raises_or_is_skipped(
    tmp_path: Path, gallery: tuple[Path, list[str]], compression: str
) -> None:
    root, names = gallery
    (root / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    with_broken = names[:2] + ["broken.jpg"] + names[2:]
    with pytest.raises(RaihaDataError, match=r"broken\.jpg.*skip_unreadable=True"):
        _build(
            tmp_path / "store", root, with_broken, ColourGridExtractor(), compression=compression
        )
    store = _build(
        tmp_path / "skipping", root, with_broken, ColourGridExtractor(), skip_unreadable=True,
        compression=compression,
    )  # fmt: skip
    assert len(store) == 5 and "broken.jpg" not in store.image_paths
    assert [item["path"] for item in store.skipped] == ["broken.jpg"]
    assert store.image_paths[2] == names[2] and store.content(2).shape[0] == 16
    if compression != "fp16":  # the fit left the broken image out
        assert store.manifest["basis"]["fit_cells"] == 5 * 16
        with pytest.raises(RaihaDataError, match=r"none of the 1 images.*broken\.jpg"):
            _build(tmp_path / "only_broken", root, ["broken.jpg"], ColourGridExtractor(),
                   skip_unreadable=True, compression=compression)  # fmt: skip


def test_empty_gallery_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        build_feature_store(tmp_path / "store", [], ColourGridExtractor(), progress=False)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        FeatureStore.open(tmp_path / "nowhere")


def test_compressed_round_trip(tmp_path: Path, gallery: tuple[Path, list[str]]) -> None:
    root, names = gallery
    extractor = ColourGridExtractor()
    store = _build(tmp_path / "store", root, names, extractor, compression="pca_int8:4")
    assert (store.content_dim, store.source_content_dim, store.compression.content_dim) == (4, 8, 4)
    assert store.bytes_per_image == 16 * (4 + 4 + HsvHistogramConfig().dim + 4)
    assert store.manifest["basis"]["fit_cells"] == 5 * 16  # every cell of the 5 images
    image = load_gallery_image(root / names[3], IMAGE_SIZE)[None]  # [1, 3, 16, 16]
    raw_content = extractor(image).reshape(16, 8).half()  # [L, C]
    projected = raw_content.float() @ store.compressor.basis.T  # [L, k]
    content = store.content(3)
    assert content.dtype == torch.float32 and content.shape == (16, 4)
    step = projected.abs().amax(dim=-1, keepdim=True) / 127  # [L, 1] quantisation step
    assert bool(((content - projected).abs() <= step / 2 + 1e-6).all())
    histograms = hsv_patch_histograms(image, (4, 4)).reshape(16, -1).half().float()  # [L, D]
    hist_step = histograms.amax(dim=-1, keepdim=True) / 255
    assert bool(((store.appearance(3) - histograms).abs() <= hist_step / 2 + 1e-3).all())
    # a query made of the raw features of image 3 is compressed exactly like its stored rows
    query = RetrievalQuery(
        raw_content.reshape(4, 4, 8), histograms.reshape(4, 4, -1), torch.eye(4) > 0
    )
    compressed = store.compress_query(query)
    assert torch.allclose(compressed.content.reshape(16, 4), content, atol=1e-6)
    assert store.compress_query(compressed) is compressed  # already in the stored space
    reopened = FeatureStore.open(tmp_path / "store")
    assert torch.equal(reopened.content_rows([4, 3]), store.content_rows([4, 3]))


def test_default_auto_keeps_small_stores_exact_and_small_features_unprojected(
    tmp_path: Path, gallery: tuple[Path, list[str]]
) -> None:
    root, names = gallery
    extractor = ColourGridExtractor()
    options = {"image_size": IMAGE_SIZE, "image_root": root, "progress": False}
    exact = build_feature_store(tmp_path / "auto", names, extractor, **options)
    assert exact.compression.method == "fp16"  # 16 x 2 x (8 + 108) bytes fit the budget
    raw = extractor(load_gallery_image(root / names[0], IMAGE_SIZE)[None]).reshape(16, 8).half()
    assert torch.equal(exact.content(0), raw)
    store = build_feature_store(
        tmp_path / "pca", names, extractor, compression="pca_int8", **options
    )
    assert store.content_dim == 8  # 8 dims <= the default k = 128: quantised, not projected
    assert store.compressor.basis is None and not (tmp_path / "pca" / BASIS_FILE).exists()
    step = raw.float().abs().amax(dim=-1, keepdim=True) / 127
    assert bool(((store.content(0) - raw.float()).abs() <= step / 2 + 1e-6).all())


def test_compression_change_is_detected(tmp_path: Path, gallery: tuple[Path, list[str]]) -> None:
    root, names = gallery
    extractor = ColourGridExtractor()
    _build(tmp_path / "store", root, names, extractor, compression="pca_int8:4")
    for other in ["fp16", "pca_int8:6", "random_int8:4"]:
        with pytest.raises(FeatureStoreMismatchError, match="compression: store has"):
            _build(tmp_path / "store", root, names, ColourGridExtractor(), compression=other)
    key = feature_store_key(extractor, HsvHistogramConfig(), IMAGE_SIZE, names, "fp16")
    with pytest.raises(FeatureStoreMismatchError, match="compression"):
        FeatureStore.open(tmp_path / "store", expected_key=key)
    key = feature_store_key(extractor, HsvHistogramConfig(), IMAGE_SIZE, names, "pca_int8:4")
    assert len(FeatureStore.open(tmp_path / "store", expected_key=key)) == 5
    rebuilt = _build(tmp_path / "store", root, names, extractor, compression="fp16", rebuild=True)
    assert rebuilt.content(0).dtype == torch.float16
    assert not (tmp_path / "store" / BASIS_FILE).exists()
    assert not list((tmp_path / "store").glob("*_scale_*.npy"))

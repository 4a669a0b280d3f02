"""Lightning ``trainer.predict`` extraction writes the same store as the plain builder (CPU, 1 device)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from raiha.io.errors import RaihaDataError
from raiha.retrieval import create_extractor
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.store.feature_store import FeatureStore
from raiha.retrieval.store.predict_features import PARTS_FOLDER, build_feature_store_with_trainer
from raiha.retrieval.store.store_builder import build_feature_store

HSV = HsvHistogramConfig(hue_bins=6, saturation_bins=2, value_bins=3)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Ten small JPEGs of coloured rectangles on a grey background, one of them corrupt."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    names = []
    for index in range(10):
        pixels = np.full((40, 40, 3), 128, dtype=np.uint8)
        x0, y0 = rng.integers(0, 20, size=2)
        pixels[y0 : y0 + 16, x0 : x0 + 8] = rng.integers(0, 255, size=3)
        pixels[y0 : y0 + 16, x0 + 8 : x0 + 16] = rng.integers(0, 255, size=3)
        name = f"real_images/r{index}.jpg"
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / name, quality=95)
        names.append(name)
    (root / names[6]).write_bytes(b"not a jpeg")
    return root, names


def _trainer() -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip


def _assert_same_store(first: FeatureStore, second: FeatureStore) -> None:
    assert first.image_paths == second.image_paths
    assert first.key == second.key and first.skipped == second.skipped
    indices = list(range(len(first)))
    torch.testing.assert_close(first.content_rows(indices), second.content_rows(indices))
    torch.testing.assert_close(first.appearance_rows(indices), second.appearance_rows(indices))


@pytest.mark.parametrize("compression", ["fp16", "pca_int8:16"])
def test_predict_writes_the_plain_builders_store(
    images: tuple[Path, list[str]], tmp_path: Path, compression: str
) -> None:
    root, names = images
    extractor = create_extractor("synthetic")
    common = dict(
        hsv_config=HSV, image_size=32, batch_size=3, shard_size=4, image_root=root,
        skip_unreadable=True, compression=compression,
    )  # fmt: skip
    plain = build_feature_store(tmp_path / "plain", names, extractor, progress=False, **common)
    predicted = build_feature_store_with_trainer(
        tmp_path / "predicted", names, extractor, _trainer(), num_workers=0, **common
    )
    assert len(predicted) == 9 and predicted.skipped[0]["path"] == names[6]
    _assert_same_store(plain, predicted)
    assert not (tmp_path / "predicted" / PARTS_FOLDER).exists()
    again = build_feature_store_with_trainer(  # complete: reused without predicting
        tmp_path / "predicted", names, extractor, _trainer(), num_workers=0, **common
    )
    _assert_same_store(predicted, again)


def test_unreadable_image_is_named_without_skipping(
    images: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, names = images
    with pytest.raises(RaihaDataError, match="r6.jpg"):
        build_feature_store_with_trainer(
            tmp_path / "store", names, create_extractor("synthetic"), _trainer(),
            hsv_config=HSV, image_size=32, batch_size=4, image_root=root, num_workers=0,
        )  # fmt: skip

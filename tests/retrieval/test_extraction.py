"""The one extraction path: batches, unreadable images, the builder's bytes and journaled seconds."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch

from raiha.io.build_journal import JOURNAL_NAME, read_journal
from raiha.io.errors import RaihaDataError
from raiha.io.split_lists import HarmonizationRecord
from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.list_search import extracted_features, stored_features
from raiha.retrieval.settings import RetrievalSettings
from raiha.retrieval.store.compression import BASIS_FILE, CompressionConfig, FeatureCompressor
from raiha.retrieval.store.extraction import (
    ImageFeatureBatcher,
    extract_features,
    load_gallery_image,
)
from raiha.retrieval.store.feature_store import FeatureStoreWriter
from raiha.retrieval.store.store_builder import build_feature_store, feature_store_key
from tests.retrieval.test_feature_store import IMAGE_SIZE, ColourGridExtractor, _write_images

HSV = HsvHistogramConfig(hue_bins=6, saturation_bins=2, value_bins=3)


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, list[str]]:
    """Seven PNGs with a broken JPEG at position 3."""
    root = tmp_path / "images"
    names = _write_images(root, 6)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    return root, names[:3] + ["broken.jpg"] + names[3:]


def _batcher(root: Path, **kwargs: object) -> ImageFeatureBatcher:
    return ImageFeatureBatcher(
        ColourGridExtractor(), HSV, IMAGE_SIZE, batch_size=3, image_root=root, **kwargs
    )  # type: ignore[arg-type]


def test_batches_map_rows_and_skip_unreadable_images(
    images: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    root, names = images
    with _batcher(root) as batcher, caplog.at_level(logging.WARNING):
        batches = list(batcher.batches(names, "skip"))
    assert [batch.names for batch in batches] == [names[0:3], names[3:6], names[6:7]]
    assert batches[1].rows == [None, 0, 1] and batches[1].kept == names[4:6]
    assert (
        batches[1].skipped[0]["path"] == "broken.jpg" and "decode" in batches[1].skipped[0]["error"]
    )
    assert "skipping unreadable gallery image" in caplog.text and "broken.jpg" in caplog.text
    image = load_gallery_image(root / names[5], IMAGE_SIZE)[None]  # [1, 3, 16, 16]
    content, appearance = extract_features(image, ColourGridExtractor(), HSV, torch.device("cpu"))
    assert torch.equal(batches[1].content[1], content[0])  # [L, C], as extracted alone
    assert torch.equal(batches[1].appearance[1], appearance[0])
    assert batches[1].content.shape == (2, 16, 8) and batches[1].content.dtype == torch.float16


def test_unreadable_images_are_named_or_ignored(
    images: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    root, names = images
    with _batcher(root, what="composite", remedy="set the flag") as batcher:
        with pytest.raises(
            RaihaDataError, match=r"composite .*broken\.jpg cannot be read.*set the flag"
        ):
            list(batcher.batches(names))
        with caplog.at_level(logging.WARNING):
            only_broken = list(batcher.batches(["broken.jpg"], "ignore"))
    assert caplog.text == "" and only_broken[0].rows == [None]
    assert only_broken[0].content.shape == (0, 16, 8) and only_broken[0].appearance.shape == (
        0,
        16,
        HSV.dim,
    )
    with pytest.raises(RuntimeError, match="with ImageFeatureBatcher"):
        list(_batcher(root).batches(names))


@pytest.mark.parametrize("compression", ["fp16", "pca_int8:4"])
def test_builder_writes_the_bytes_of_the_reference_path(
    tmp_path: Path, images: tuple[Path, list[str]], compression: str
) -> None:
    """build_feature_store equals the writer fed image by image (same files, byte for byte)."""
    root, names = images
    extractor = ColourGridExtractor()
    built = build_feature_store(
        tmp_path / "built", names, extractor, hsv_config=HSV, image_size=IMAGE_SIZE, batch_size=2,
        shard_size=3, image_root=root, skip_unreadable=True, progress=False, compression=compression,
    )  # fmt: skip
    config = CompressionConfig.parse(compression)
    writer = FeatureStoreWriter(
        tmp_path / "reference", key=feature_store_key(extractor, HSV, IMAGE_SIZE, names, config),
        image_paths=names, grid_size=(4, 4), content_dim=8, appearance_dim=HSV.dim,
        shard_size=3, compression=config,
    )  # fmt: skip
    if writer.compressor is None:  # pca_int8: the builder's fitted basis
        writer.set_compressor(FeatureCompressor.load(built.folder / BASIS_FILE, config, 8))
    for shard in range(writer.num_shards):
        readable = [name for name in writer.shard_inputs(shard) if name != "broken.jpg"]
        pixels = torch.stack([load_gallery_image(root / name, IMAGE_SIZE) for name in readable])
        content, appearance = extract_features(pixels, extractor, HSV, torch.device("cpu"))
        skipped = [
            item for item in built.skipped if item["path"] in writer.shard_inputs(shard)
        ]  # the decoder's message
        writer.write_shard(shard, content, appearance, readable, skipped)
    files = sorted(path.name for path in (tmp_path / "built").iterdir())
    assert files == sorted(path.name for path in (tmp_path / "reference").iterdir())
    assert len(files) > 3 and [item["path"] for item in built.skipped] == ["broken.jpg"]
    for name in (name for name in files if name != BASIS_FILE):  # the reference loaded that one
        built_bytes, reference_bytes = (
            (tmp_path / f / name).read_bytes() for f in ("built", "reference")
        )
        if (
            name == "manifest.json" and compression != "fp16"
        ):  # a loaded basis has no fit statistics
            built_manifest, reference_manifest = (
                json.loads(built_bytes),
                json.loads(reference_bytes),
            )
            assert reference_manifest.pop("basis").items() <= built_manifest.pop("basis").items()
            assert built_manifest == reference_manifest
        else:
            assert built_bytes == reference_bytes, name


def test_journaled_seconds_are_the_builds_wall_time(
    tmp_path: Path, images: tuple[Path, list[str]]
) -> None:
    root, names = images
    options = dict(
        hsv_config=HSV, image_size=IMAGE_SIZE, batch_size=2, shard_size=3, image_root=root,
        skip_unreadable=True, progress=False, compression="fp16",
    )  # fmt: skip
    started = time.perf_counter()
    build_feature_store(tmp_path / "store", names, ColourGridExtractor(), **options)
    wall = time.perf_counter() - started
    build_feature_store(tmp_path / "store", names, ColourGridExtractor(), **options)  # reused
    entries = read_journal(tmp_path / JOURNAL_NAME)
    assert len(entries) == 1 and entries[0]["images"] == 6
    # the timer once restarted at the last batch's index: perf_counter() - 6 (hours of uptime)
    assert 0.0 <= entries[0]["seconds"] <= wall + 0.001


def test_composites_without_a_store_match_their_store(
    tmp_path: Path, images: tuple[Path, list[str]]
) -> None:
    root, names = images
    records = [HarmonizationRecord("test", composite=name, mask=name, real=name) for name in names]
    settings = RetrievalSettings(hsv=HSV, image_size=IMAGE_SIZE, batch_size=3, skip_unreadable=True)
    extractor = ColourGridExtractor()
    store = build_feature_store(
        tmp_path / "store", names, extractor, hsv_config=HSV, image_size=IMAGE_SIZE,
        image_root=root, skip_unreadable=True, progress=False, compression="fp16",
    )  # fmt: skip
    extracted = list(extracted_features(records, extractor, root, settings))
    stored = list(stored_features(records, store))
    assert [item[0] for item in extracted] == records
    assert [item[1] is None for item in extracted] == [name == "broken.jpg" for name in names]
    for (_, content, appearance), (_, stored_content, stored_appearance) in zip(extracted, stored):
        assert (content is None) == (stored_content is None)
        if content is not None:
            assert torch.equal(content.float(), stored_content)  # [L, C]: float32 from a store
            assert torch.equal(appearance, stored_appearance)
    strict = RetrievalSettings(hsv=HSV, image_size=IMAGE_SIZE, batch_size=3)
    with pytest.raises(
        RaihaDataError, match=r"composite .*broken\.jpg.*retrieval\.skip_unreadable=true"
    ):
        list(extracted_features(records, extractor, root, strict))

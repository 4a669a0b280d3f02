"""retrieval.extraction_precision: bf16 autocast reaches the extractor, stays close to fp32,
keys bf16 stores apart from fp32 ones, leaves fp32 keys as they were, refuses bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.features.registry import create_extractor
from raiha.retrieval.pipeline import build_reference_lists
from raiha.retrieval.settings import RetrievalSettings, short_hash
from raiha.retrieval.store import extraction
from raiha.retrieval.store.extraction import ImageFeatureBatcher, resolve_extraction_precision
from raiha.retrieval.store.feature_store import FeatureStoreMismatchError
from raiha.retrieval.store.store_builder import build_feature_store, feature_store_key
from raiha.world import SyntheticWorldConfig, generate_world
from tests.retrieval.test_feature_store import ColourGridExtractor, _write_images

HSV = HsvHistogramConfig(hue_bins=6, saturation_bins=2, value_bins=3)
TINY_WORLD = SyntheticWorldConfig(image_size=32, num_train=24, num_test=8, num_identities=6)
# the keys of fp32 stores computed before extraction_precision existed: they must not move
FP32_FEATURES_KEY = "a4440c9236"  # RetrievalSettings().features_key("/tmp/world")
FP32_DVT_FEATURES_KEY = "43bd2616ec"  # dvt, 448 px, device cuda
FP32_STORE_KEY_HASH = "eaa8e4e5382a8565"  # ColourGridExtractor, HsvHistogramConfig(), 16 px, fp16


def test_invalid_values_are_refused_naming_the_setting() -> None:
    message = (
        r"retrieval.extraction_precision must be one of \('fp32', 'bf16', 'auto'\), got 'fp16'"
    )
    with pytest.raises(ValueError, match=message):
        RetrievalSettings(extraction_precision="fp16")
    with pytest.raises(ValueError, match=message):
        RetrievalSettings.from_dict({"extraction_precision": "fp16"})
    with pytest.raises(ValueError, match=message):
        ImageFeatureBatcher(ColourGridExtractor(), HSV, 16, precision="fp16")
    with pytest.raises(ValueError, match="resolved extraction precision"):
        feature_store_key(ColourGridExtractor(), HSV, 16, ["a.png"], "fp16", "auto")


def test_auto_is_bf16_only_on_a_cuda_device_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_extraction_precision("auto", "cpu") == "fp32"
    assert resolve_extraction_precision("bf16", "cpu") == "bf16"
    assert resolve_extraction_precision("fp32", "cuda") == "fp32"
    monkeypatch.setattr(extraction, "bf16_support", lambda device: (True, "native"))
    assert resolve_extraction_precision("auto", "cuda:0") == "bf16"
    assert resolve_extraction_precision("auto", torch.device("cpu")) == "fp32"
    auto = RetrievalSettings(extraction_precision="auto", device="cuda")
    assert auto.resolved_extraction_precision() == "bf16"
    assert auto.features_key("/tmp/world") == RetrievalSettings(
        extraction_precision="bf16", device="cuda"
    ).features_key("/tmp/world")
    monkeypatch.setattr(extraction, "bf16_support", lambda device: (False, "emulated"))
    assert resolve_extraction_precision("auto", "cuda") == "fp32"


def test_fp32_keys_are_unchanged_and_bf16_keys_differ() -> None:
    fp32 = RetrievalSettings()
    assert fp32.extraction_precision == "fp32"
    assert fp32.features_key("/tmp/world") == FP32_FEATURES_KEY
    assert RetrievalSettings(extraction_precision="auto").features_key("/tmp/world") == (
        FP32_FEATURES_KEY  # auto on the CPU is fp32
    )
    dvt = RetrievalSettings(extractor="dvt", image_size=448, device="cuda")
    assert dvt.features_key("/tmp/world") == FP32_DVT_FEATURES_KEY
    bf16 = RetrievalSettings(extraction_precision="bf16")
    assert bf16.features_key("/tmp/world") != FP32_FEATURES_KEY
    assert RetrievalSettings.from_dict(bf16.to_dict()) == bf16
    names = ["a.png", "b.png"]
    key = feature_store_key(ColourGridExtractor(), HsvHistogramConfig(), 16, names, "fp16")
    assert "extraction_precision" not in key and short_hash(key, 16) == FP32_STORE_KEY_HASH
    bf16_key = feature_store_key(
        ColourGridExtractor(), HsvHistogramConfig(), 16, names, "fp16", "bf16"
    )
    assert bf16_key == {**key, "extraction_precision": "bf16"}


def _cell_cosine(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Cosine of each cell ``[B, L]`` of two grids ``[B, L, C]``."""
    return F.cosine_similarity(first.float(), second.float(), dim=-1)


def test_bf16_reaches_a_tiny_dvt_and_stays_within_cosine_0_99(tmp_path: Path) -> None:
    names = _write_images(tmp_path, 3)
    dvt = create_extractor(
        "dvt", model_name="vit_small_patch14_reg4_dinov2.lvd142m", input_size=56,
        model_kwargs={"depth": 1}, pretrained=False, allow_random_weights=True,
    )  # fmt: skip
    grids = {}
    for precision in ("fp32", "bf16"):
        batcher = ImageFeatureBatcher(dvt, HSV, 56, image_root=tmp_path, precision=precision)
        with batcher:
            (batch,) = batcher.batches(names)
        assert batcher.precision == precision
        assert batch.content.dtype == torch.float16 and batch.content.shape == (3, 16, 384)
        grids[precision] = batch
    assert not torch.equal(grids["fp32"].content, grids["bf16"].content)  # bf16 did run
    assert _cell_cosine(grids["fp32"].content, grids["bf16"].content).min() > 0.99
    assert torch.equal(grids["fp32"].appearance, grids["bf16"].appearance)  # HSV stays fp32


def test_bf16_store_is_keyed_apart_from_the_fp32_one(tmp_path: Path) -> None:
    names = _write_images(tmp_path / "images", 4)
    kwargs = dict(
        hsv_config=HSV, image_size=16, image_root=tmp_path / "images", progress=False,
        compression="fp16", num_workers=1,
    )  # fmt: skip
    fp32 = build_feature_store(tmp_path / "fp32", names, ColourGridExtractor(), **kwargs)
    bf16 = build_feature_store(
        tmp_path / "bf16", names, ColourGridExtractor(), precision="bf16", **kwargs
    )
    assert "extraction_precision" not in fp32.key and bf16.key["extraction_precision"] == "bf16"
    assert not torch.equal(fp32.content(0), bf16.content(0))
    assert _cell_cosine(fp32.content(0)[None], bf16.content(0)[None]).min() > 0.99
    with pytest.raises(FeatureStoreMismatchError):  # a bf16 store never stands in for fp32
        build_feature_store(tmp_path / "bf16", names, ColourGridExtractor(), **kwargs)
    with pytest.raises(FeatureStoreMismatchError):
        build_feature_store(
            tmp_path / "fp32", names, ColourGridExtractor(), precision="bf16", **kwargs
        )


def test_the_pipeline_extracts_gallery_and_unstored_composites_in_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = generate_world(tmp_path / "world", TINY_WORLD)
    seen: list[str] = []
    original = extraction.extract_features

    def spy(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(str(args[4]))
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(extraction, "extract_features", spy)
    settings = RetrievalSettings(
        image_size=32, extraction_precision="bf16", store_composites=False, batch_size=64
    )
    outputs = build_reference_lists(world, tmp_path / "cache", settings, progress=False)
    assert outputs.gallery.key["extraction_precision"] == "bf16"
    assert outputs.lists_dir.parent.parent.name == settings.features_key(world)
    # the gallery in one batch, then each split's composites (searched without a store)
    assert seen == ["bf16"] * 3

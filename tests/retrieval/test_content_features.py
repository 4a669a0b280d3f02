"""Dense content extractors with a tiny random-weight DINOv2 (ViT-S/14 at 56 px -> 4 x 4 grid)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from raiha.retrieval.features.content_features import (
    DenseFeatureExtractor,
    Dinov2Extractor,
    DvtExtractor,
    MissingWeightsError,
)
from raiha.retrieval.features.dvt_denoiser import DvtDenoiser
from raiha.retrieval.features.registry import (
    available_extractors,
    create_extractor,
    register_extractor,
)

TINY = "vit_small_patch14_reg4_dinov2.lvd142m"
SHALLOW = {"depth": 1}  # one block keeps creation and hashing fast on 2 CPUs


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: the hub must fail at once instead of retrying for a minute."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def tiny_dinov2() -> Dinov2Extractor:
    torch.manual_seed(0)
    return create_extractor(
        "dinov2", model_name=TINY, input_size=56, model_kwargs=SHALLOW, pretrained=False
    )


def test_registry_lists_and_rejects() -> None:
    assert {"dinov2", "dvt"} <= set(available_extractors())
    with pytest.raises(KeyError, match="unknown content extractor 'nope'.*dinov2"):
        create_extractor("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("dinov2")(type("Other", (DenseFeatureExtractor,), {}))


def test_shape_grid_and_frozen(tiny_dinov2: Dinov2Extractor) -> None:
    images = torch.rand(2, 3, 40, 64) * 2 - 1  # any size: resized to 56 x 56
    with torch.no_grad():
        features = tiny_dinov2(images)
    assert features.shape == (2, 4, 4, 384)
    assert tiny_dinov2.grid_size(999) == (4, 4) and tiny_dinov2.feature_dim == 384
    assert tiny_dinov2.name == "dinov2" and not tiny_dinov2.training
    assert not any(p.requires_grad for p in tiny_dinov2.parameters())


def test_prefix_tokens_dropped_and_imagenet_normalised(tiny_dinov2: Dinov2Extractor) -> None:
    images = torch.rand(1, 3, 56, 56) * 2 - 1
    pixels = (
        (images + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(tiny_dinov2.prepare(images), pixels, atol=1e-6)
    with torch.no_grad():
        tokens = tiny_dinov2.backbone.forward_features(
            pixels
        )  # [1, 5 + 16, 384]: cls + 4 registers
        features = tiny_dinov2(images)
    assert tiny_dinov2.num_prefix_tokens == 5 and tokens.shape[1] == 21
    assert torch.allclose(features.reshape(1, 16, 384), tokens[:, 5:], atol=1e-5)
    assert not torch.allclose(features.reshape(1, 16, 384)[:, :5], tokens[:, :5], atol=1e-3)
    assert torch.allclose(features[0, 1, 2], tokens[0, 5 + 1 * 4 + 2], atol=1e-5)  # row-major grid


def test_missing_pretrained_weights_fail_fast_and_clearly(offline: None) -> None:
    start = time.monotonic()
    with pytest.raises(MissingWeightsError, match=f"'{TINY}'.*allow_random_weights=True"):
        Dinov2Extractor(model_name=TINY, input_size=56, model_kwargs=SHALLOW, pretrained=True)
    assert time.monotonic() - start < 10  # no network retries


def test_missing_pretrained_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="absent.safetensors"):
        Dinov2Extractor(
            model_name=TINY,
            input_size=56,
            model_kwargs=SHALLOW,
            pretrained_file=str(tmp_path / "absent.safetensors"),
        )


def test_allow_random_weights_warns_loudly(offline: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        extractor = Dinov2Extractor(
            model_name=TINY,
            input_size=56,
            model_kwargs=SHALLOW,
            pretrained=True,
            allow_random_weights=True,
        )
    assert extractor.feature_dim == 384
    assert any("RANDOM WEIGHTS" in record.message for record in caplog.records)


def test_random_weights_are_the_same_in_every_process(offline: None, tmp_path: Path) -> None:
    """A fit and a later test build the same random-weight extractor (one store key for both),
    whatever the global RNG's state."""
    kwargs = dict(
        model_name=TINY, input_size=56, model_kwargs=SHALLOW, pretrained=True,
        allow_random_weights=True, denoiser_checkpoint=str(tmp_path / "missing.pth"),
    )  # fmt: skip
    torch.manual_seed(1)
    first = DvtExtractor(**kwargs)  # type: ignore[arg-type]
    torch.manual_seed(2)
    second = DvtExtractor(**kwargs)  # type: ignore[arg-type]
    assert first.cache_config() == second.cache_config()
    images = torch.rand(1, 3, 56, 56) * 2 - 1  # [1, 3, 56, 56]
    assert torch.equal(first(images), second(images))  # [1, 4, 4, 384]


def test_pretrained_file_is_loaded(tiny_dinov2: Dinov2Extractor, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_dinov2.backbone.state_dict(), weights)
    loaded = Dinov2Extractor(
        model_name=TINY,
        input_size=56,
        model_kwargs=SHALLOW,
        pretrained=True,
        pretrained_file=str(weights),
    )
    images = torch.rand(1, 3, 56, 56) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(images), tiny_dinov2(images), atol=1e-5)
    assert loaded.cache_config()["weights_sha256"] == tiny_dinov2.cache_config()["weights_sha256"]


def test_dvt_applies_the_denoiser(tiny_dinov2: Dinov2Extractor, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_dinov2.backbone.state_dict(), weights)
    denoiser = DvtDenoiser(feature_dim=384)
    torch.save({"denoiser": denoiser.state_dict()}, tmp_path / f"{TINY}.pth")
    dvt = create_extractor(
        "dvt",
        model_name=TINY,
        input_size=56,
        model_kwargs=SHALLOW,
        pretrained_file=str(weights),
        denoiser_dir=str(tmp_path),
    )
    assert dvt.config()["denoiser_checkpoint"] == str(tmp_path / f"{TINY}.pth")
    images = torch.rand(2, 3, 56, 56) * 2 - 1
    with torch.no_grad():
        expected = denoiser.eval()(tiny_dinov2(images))
        assert torch.allclose(dvt(images), expected, atol=1e-5)
    assert dvt.cache_config()["weights_sha256"] != tiny_dinov2.cache_config()["weights_sha256"]


def test_dvt_without_denoiser_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="denoiser_checkpoint"):
        DvtExtractor(model_name=TINY, input_size=56, model_kwargs=SHALLOW, pretrained=False)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        DvtExtractor(
            model_name=TINY,
            input_size=56,
            model_kwargs=SHALLOW,
            pretrained=False,
            denoiser_checkpoint=str(tmp_path / "missing.pth"),
        )

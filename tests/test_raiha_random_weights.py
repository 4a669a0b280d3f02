"""The smoke run of the real-data experiment (`+experiment=raiha`: DVT features, pca_int8
gallery and composite stores, indexed search, SGF over 768 channels) with random weights on
a tiny 64 px world: fit builds the retrieval outputs, the multi-seed test finds them again."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import huggingface_hub.constants
import pytest

from raiha.io.build_journal import read_journal
from raiha.train import train
from raiha.world import SyntheticWorldConfig, generate_world
from tests.hydra_helpers import compose_config

pytestmark = pytest.mark.slow

RANDOM_DVT = [
    "+data.references.retrieval.extractor_kwargs.allow_random_weights=true",
    # one block of the ViT-B at 112 px: an 8 x 8 x 768 grid (the 1/8 grid of 64 px)
    "+data.references.retrieval.extractor_kwargs.model_kwargs={depth: 1}",
    "data.references.retrieval.extractor_kwargs.input_size=112",
    "data.references.retrieval.image_size=64",
    "data.references.retrieval.device=cpu",
    "data.references.retrieval.num_workers=0",
    "data.references.retrieval.index.content_clusters=16",
    "data.references.retrieval.index.appearance_clusters=8",
    "data.references.retrieval.compression=pca_int8:64",
    "data.references.retrieval.composite_compression=pca_int8:64",
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: the hub fails at once and the extractor falls back to seeded random weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_raiha_experiment_with_random_weights_fits_and_tests(
    tmp_path: Path, offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    world = generate_world(
        tmp_path / "world",
        SyntheticWorldConfig(image_size=64, num_train=40, num_test=16, num_identities=8),
    )
    overrides = [
        "+experiment=raiha", "trainer=cpu", "+debug=fdr", "logger=csv", "reference_seeds=[0,1]",
        f"data.root={world}", "data.subsets=null", "data.image_size=64", "data.batch_size=4",
        "data.eval_batch_size=8", "data.val_size=8", "model.net.base_width=8", *RANDOM_DVT,
    ]  # fmt: skip
    cfg = compose_config("train", overrides, output_dir=tmp_path / "run", data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        record = train(cfg)
    assert "RANDOM WEIGHTS" in caplog.text
    assert record["experiment"] == "raiha" and record["setting"] == "reference"
    assert len(record["per_seed"]) == 2 and record["all"]["n"] > 0
    journals = list((tmp_path / "data" / "retrieval").rglob("builds.jsonl"))
    built = [entry for journal in journals for entry in read_journal(journal)]
    stores = [entry["name"] for entry in built if entry["kind"] == "feature_store"]
    assert sorted(name.split("-")[0] for name in stores) == ["composites", "composites", "gallery"]
    assert [entry["kind"] for entry in built].count("reference_lists") == 1  # test reused them
    manifests = [
        json.loads(path.read_text()) for path in (tmp_path / "data" / "retrieval").rglob("manifest.json")
    ]
    assert len(manifests) == 3  # SGF read its 768-channel grids from these pca_int8 stores
    assert all(m["compression"]["method"] == "pca_int8" and m["content_dim"] == 64 for m in manifests)

"""Every synthetic experiment of Table III runs a fast_dev_run end to end on a tiny world:
retrieval (weight-free extractor, stores, lists), references, SGF grids, multi-seed test."""

from __future__ import annotations

from pathlib import Path

import pytest

from raiha.train import train
from raiha.utils.config import CONFIG_DIR
from tests.hydra_helpers import TINY_WORLD, compose_config

pytestmark = pytest.mark.slow

SYNTHETIC_EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*_synthetic.yaml"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def test_all_table3_experiments_have_a_synthetic_counterpart() -> None:
    real = {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")} - set(SYNTHETIC_EXPERIMENTS)
    expected = {"raiha", "ablation_sgf", "ablation_no_aug", "ablation_no_retrieval",
                "ablation_eps_a_07_08", "ablation_eps_a_08_09", "non_reference"}
    assert expected <= real
    assert {f"{name}_synthetic" for name in expected} == set(SYNTHETIC_EXPERIMENTS)


@pytest.mark.parametrize("experiment", SYNTHETIC_EXPERIMENTS)
def test_experiment_fast_dev_run(tmp_path: Path, data_dir: Path, experiment: str) -> None:
    overrides = [f"+experiment={experiment}", "+debug=fdr", "logger=csv", "reference_seeds=[0,1]", *TINY_WORLD]
    cfg = compose_config("train", overrides, output_dir=tmp_path / "run", data_dir=data_dir)
    record = train(cfg)
    assert record["experiment"] == experiment
    assert (tmp_path / "run" / "metrics.json").is_file()
    if cfg.model.evaluate_with_reference:
        assert record["setting"] == "reference" and len(record["per_seed"]) == 2
        assert "mse_std" in record["all"]
        if cfg.model.net.attention != "none":  # where the foreground looked in the reference
            attention = record["attention"]
            assert 0.0 <= attention["attention_on_match"] <= 1.0 and 0.0 < attention["match_area_share"] < 1.0
            assert attention["seeds"] == 2 and attention["n"] > 0
    else:
        assert record["setting"] == "non_reference"
    assert record["all"]["n"] > 0

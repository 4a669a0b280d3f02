"""raiha.eval from the model card, per-image results, raiha.score equal to raiha.eval, full resolution."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import pytest

from raiha.eval import evaluate
from raiha.evaluation.per_image_rows import read_per_image_csv
from raiha.score import score
from raiha.train import train
from tests.hydra_helpers import TINY_WORLD, compose_config

pytestmark = pytest.mark.slow

NETWORK_FLAGS = ["model.net.base_width=12", "model.net.output_mode=image"]  # not the config's defaults
WORLD = [flag for flag in TINY_WORLD if not flag.startswith("model.")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data_dir, checkpoint) of a tiny model with a non-default network."""
    data_dir = tmp_path_factory.mktemp("data")
    run = tmp_path_factory.mktemp("train")
    cfg = compose_config(
        "train", WORLD + NETWORK_FLAGS + ["+debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false"],
        output_dir=run, data_dir=data_dir,
    )  # fmt: skip
    train(cfg)
    return data_dir, run / "checkpoints" / "last.ckpt"


def _eval(tmp_path: Path, trained: tuple[Path, Path], name: str, overrides: list[str]) -> tuple[dict, Path]:
    data_dir, checkpoint = trained
    out = tmp_path / name
    cfg = compose_config(
        "eval", WORLD + [f"ckpt_path={checkpoint}", "logger=csv", *overrides], output_dir=out, data_dir=data_dir
    )
    return evaluate(cfg), out


def _assert_rows_match(record: dict, rows: list[dict], prefix: str = "", group: str = "all") -> None:
    groups = {"all": record["all"], **record["subsets"]}
    for name, scores in groups.items():
        members = rows if name == "all" else [row for row in rows if row["subset"] == name]
        assert len(members) == scores["n"]
        for key in ("mse", "psnr", "fmse"):
            mean = math.fsum(row[prefix + key] for row in members) / len(members)
            assert mean == pytest.approx(scores[key], rel=1e-12), (name, key)


def test_eval_builds_the_network_from_the_card_and_rows_sum_to_the_aggregates(tmp_path, trained) -> None:
    record, out = _eval(tmp_path, trained, "eval", ["eval.save_predictions=true"])
    assert record["model_source"] == {"model_card": True, "overrides": {}, "image_size": 48}
    assert record["protocol"] == "paper" and record["protocol_conventions"]["psnr_peak"] == "255"
    rows = read_per_image_csv(out / "per_image.csv")
    assert len(rows) == record["all"]["n"] == 24
    _assert_rows_match(record, rows)
    _assert_rows_match(record["composite_baseline"], rows, prefix="composite_")
    buckets = record["fg_ratio_buckets"]["buckets"]
    assert sum(bucket["all"]["n"] for bucket in buckets.values()) == 24
    for label, bucket in buckets.items():
        low, high = (float(edge) / 100 for edge in label.rstrip("%").split("-"))
        members = [row for row in rows if low <= row["fg_ratio"] < high or (high == 1.0 and row["fg_ratio"] == 1.0)]
        assert bucket["all"]["n"] == len(members)
    assert json.loads((out / "metrics.json").read_text())["fg_ratio_buckets"] == json.loads(json.dumps(record["fg_ratio_buckets"]))


def test_explicit_model_flags_win_and_are_reported(tmp_path, trained) -> None:
    from raiha.models.checkpoint_io import CheckpointError

    with pytest.raises(CheckpointError, match="shape mismatches"):
        _eval(tmp_path, trained, "wrong", ["model.net.base_width=8"])
    record, _ = _eval(tmp_path, trained, "same", ["model.net.base_width=12"])
    assert record["model_source"]["overrides"] == {"base_width": 12}


def test_score_of_saved_predictions_equals_eval(tmp_path, trained) -> None:
    record, out = _eval(tmp_path, trained, "eval", ["eval.save_predictions=true"])
    data_dir, _ = trained
    eval_cfg = compose_config("eval", WORLD + ["ckpt_path=x"], output_dir=tmp_path / "x", data_dir=data_dir)
    root = hydra.utils.instantiate(eval_cfg.data).dataset_root()
    score_cfg = compose_config(
        "score", [f"predictions={out / 'predictions'}", f"data.root={root}", "num_workers=0"],
        output_dir=tmp_path / "score", data_dir=data_dir,
    )  # fmt: skip
    scored = score(score_cfg)
    for group in ("all", *record["subsets"]):
        ours = scored["all"] if group == "all" else scored["subsets"][group]
        theirs = record["all"] if group == "all" else record["subsets"][group]
        for key in ("n", "mse", "psnr", "fmse"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-12), (group, key)
    assert scored["composite_baseline"]["all"]["mse"] == pytest.approx(record["composite_baseline"]["all"]["mse"], rel=1e-12)
    rows = read_per_image_csv(tmp_path / "score" / "per_image.csv")
    eval_rows = {row["name"]: row for row in read_per_image_csv(out / "per_image.csv")}
    assert {row["name"] for row in rows} == set(eval_rows)
    for row in rows:
        assert row["mse"] == pytest.approx(eval_rows[row["name"]]["mse"], rel=1e-12)
        assert row["fg_ratio"] == eval_rows[row["name"]]["fg_ratio"]


@pytest.mark.parametrize("protocol", ["is2am", "harmonizer"])
def test_full_resolution_eval_writes_rows_for_every_image(tmp_path, trained, protocol: str) -> None:
    record, out = _eval(tmp_path, trained, protocol, [f"protocol={protocol}", "eval.resolution=original", "eval.num_workers=0"])
    assert record["resolution"] == "original" and record["protocol"] == protocol
    assert record["background"] == "composite"
    rows = read_per_image_csv(out / "per_image.csv")
    assert len(rows) == 24
    _assert_rows_match(record, rows)

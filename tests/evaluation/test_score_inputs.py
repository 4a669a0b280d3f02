"""raiha.score on a hand-made iHarmony4 folder: known answers, buckets, resolutions and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raiha.evaluation.fg_buckets import bucket_labels, bucket_of, bucket_results
from raiha.evaluation.image_scoring import parse_resolution, target_size
from raiha.evaluation.per_image_rows import read_per_image_csv
from raiha.io.errors import RaihaDataError
from raiha.models.model_card import explicit_keys, net_from_card
from raiha.score import score
from tests.hydra_helpers import compose_config

NAMES = ["a1_1_1", "a2_1_1"]  # HAdobe5k-style names: real a1.jpg, mask a1_1.png


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(root, predictions): two 8 x 6 images; real 100, composite 130 and prediction 110 inside the mask."""
    root, predictions = tmp_path / "root", tmp_path / "pred"
    lines = []
    for position, name in enumerate(NAMES):
        stem = name.split("_")[0]
        real = np.full((6, 8, 3), 100, np.uint8)
        mask = np.zeros((6, 8), np.uint8)
        mask[: 2 + 2 * position, :4] = 255  # 8 and 16 of 48 pixels
        composite, prediction = real.copy(), real.copy()
        composite[mask > 0], prediction[mask > 0] = 130, 110
        _write(root / "Sub" / "real_images" / f"{stem}.jpg", real)  # flat: JPEG keeps it exactly
        _write(root / "Sub" / "masks" / f"{stem}_1.png", mask)
        _write(root / "Sub" / "composite_images" / f"{name}.png", composite)
        _write(predictions / f"{name}.png", prediction)
        lines.append(f"Sub/composite_images/{name}.png")
    (root / "IHD_test.txt").write_text("\n".join(lines) + "\n")
    return root, predictions


def _score(tmp_path: Path, root: Path, predictions: Path, *overrides: str):
    cfg = compose_config(
        "score", [f"predictions={predictions}", f"data.root={root}", "num_workers=0", *overrides],
        output_dir=tmp_path / "out", data_dir=tmp_path / "data",
    )  # fmt: skip
    return score(cfg)


def test_known_answers_rows_and_buckets(tmp_path: Path, world) -> None:
    record = _score(tmp_path, *world)
    # image 1: 8 fg pixels x 3 values of error 10^2 over 144 values; image 2: 16 pixels
    expected = [8 * 3 * 100 / 144, 16 * 3 * 100 / 144]
    assert record["all"]["mse"] == pytest.approx(sum(expected) / 2)
    assert record["all"]["fmse"] == pytest.approx(100.0)
    assert record["composite_baseline"]["all"]["fmse"] == pytest.approx(900.0)
    rows = read_per_image_csv(tmp_path / "out" / "per_image.csv")
    assert [row["mse"] for row in rows] == pytest.approx(expected)
    assert [row["fg_ratio"] for row in rows] == pytest.approx([8 / 48, 16 / 48])
    assert record["fg_ratio_buckets"]["buckets"]["15-100%"]["all"]["n"] == 2
    assert record["protocol"] == "paper" and record["resolution"] == "original"


def test_size_resolution_and_protocols_change_the_numbers(tmp_path: Path, world) -> None:
    pctnet = _score(tmp_path, *world, "protocol=pctnet")
    assert pctnet["protocol_conventions"]["mse"] == "masked"
    assert pctnet["all"]["psnr"] == pytest.approx(
        np.mean([10 * math.log10(255**2 / (m + 1e-6)) for m in (8 * 300 / 144, 16 * 300 / 144)])
    )
    squared = _score(tmp_path, *world, "resolution=size:4")
    assert squared["resolution"] == "size=4" and squared["all"]["n"] == 2


def test_a_raharmony4_list_restricts_the_composites(tmp_path: Path, world) -> None:
    root, predictions = world
    line = '{"input": "Sub/composite_images/a2_1_1.png", "mask": "Sub/masks/a2_1.png", "refs": ["Sub/real_images/a1.jpg"]}'
    (root / "refs.jsonl").write_text(line + "\n")
    record = _score(tmp_path, root, predictions, "data.reference_list=refs.jsonl", "on_extra=ignore")
    assert record["all"]["n"] == 1 and record["all"]["mse"] == pytest.approx(16 * 3 * 100 / 144)


def test_missing_extra_and_duplicate_predictions_are_listed(tmp_path: Path, world) -> None:
    root, predictions = world
    (predictions / f"{NAMES[0]}.png").rename(tmp_path / "moved.png")
    with pytest.raises(RaihaDataError, match=r"1 of 2 test composites have no prediction:\n  Sub/composite_images/a1_1_1.png"):
        _score(tmp_path, root, predictions)
    (tmp_path / "moved.png").rename(predictions / f"{NAMES[0]}.png")
    _write(predictions / "stray.png", np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(RaihaDataError, match=r"(?s)1 predictions match no test composite.*stray.png"):
        _score(tmp_path, root, predictions)
    assert _score(tmp_path, root, predictions, "on_extra=ignore")["all"]["n"] == 2
    _write(predictions / "sub" / f"{NAMES[0]}.jpg", np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(RaihaDataError, match="two predictions for a1_1_1"):
        _score(tmp_path, root, predictions, "on_extra=ignore")


def test_wrong_sizes_are_refused_or_resized(tmp_path: Path, world) -> None:
    root, predictions = world
    _write(predictions / f"{NAMES[1]}.png", np.full((12, 16, 3), 110, np.uint8))
    with pytest.raises(RaihaDataError, match=r"a2_1_1.png is 16x12 but composite .* is 8x6; pass on_size_mismatch=resize"):
        _score(tmp_path, root, predictions)
    assert _score(tmp_path, root, predictions, "on_size_mismatch=resize")["all"]["n"] == 2


def test_unreadable_image_mask_of_another_size_and_unknown_protocol(tmp_path: Path, world) -> None:
    root, predictions = world
    with pytest.raises(ValueError, match=r"unknown evaluation protocol 'hdnet'; choose one of \['paper', 'is2am', 'pctnet', 'harmonizer'\]"):
        _score(tmp_path, root, predictions, "protocol=hdnet")
    (predictions / f"{NAMES[0]}.png").write_bytes(b"not an image")
    with pytest.raises(RaihaDataError, match="a1_1_1.png"):
        _score(tmp_path, root, predictions)
    _write(predictions / f"{NAMES[0]}.png", np.full((6, 8, 3), 110, np.uint8))
    _write(root / "Sub" / "masks" / "a2_1.png", np.zeros((5, 8), np.uint8))
    with pytest.raises(RaihaDataError, match=r"mask .*a2_1.png is 8x5 but composite .*a2_1_1.png is 8x6"):
        _score(tmp_path, root, predictions)


def test_bucket_boundaries() -> None:
    edges = [0.0, 0.05, 0.15, 1.0]
    assert bucket_labels(edges) == ["0-5%", "5-15%", "15-100%"]
    assert [bucket_of(r, edges) for r in (0.0, 0.0499999, 0.05, 0.1499999, 0.15, 1.0)] == [0, 0, 1, 1, 2, 2]
    rows = [{"subset": "S", "fg_ratio": r, "mse": float(i), "psnr": 1.0, "fmse": 2.0}
            for i, r in enumerate((0.01, 0.05, 0.2, 0.3))]  # fmt: skip
    buckets = bucket_results(rows, ["S"], edges)["buckets"]
    assert buckets["0-5%"]["all"] == {"n": 1, "mse": 0.0, "psnr": 1.0, "fmse": 2.0}
    assert buckets["15-100%"]["subsets"]["S"]["mse"] == 2.5
    for bad in ([0.0, 0.5], [0.1, 1.0], [0.0, 0.3, 0.2, 1.0]):
        with pytest.raises(ValueError, match="rise strictly from 0 to 1"):
            bucket_labels(bad)


def test_resolution_names() -> None:
    assert str(parse_resolution("max_side:1024")) == str(parse_resolution("max_side=1024")) == "max_side=1024"
    assert target_size(6048, 4032, parse_resolution("max_side=1024")) == (1024, 683)
    assert target_size(800, 600, parse_resolution("max_side=1024")) == (800, 600)
    assert target_size(800, 600, parse_resolution("size=256")) == (256, 256)
    with pytest.raises(ValueError, match="use model, original, max_side=N or size=N"):
        parse_resolution("half")


def test_card_network_with_explicit_overrides() -> None:
    card = {"name": "unet", "base_width": 32, "output_mode": "image", "deep": {"a": 1}}
    config = {"name": "unet", "base_width": 16, "output_mode": "residual", "deep": {"a": 2}}
    overrides = ["data.image_size=48", "model.net.base_width=16", "++model.net.deep.a=2", "model.lr=1"]
    net, applied = net_from_card(card, config, explicit_keys(overrides, "model.net."))
    assert net == {"name": "unet", "base_width": 16, "output_mode": "image", "deep": {"a": 2}}
    assert applied == {"base_width": 16, "deep.a": 2}
    assert net_from_card(card, config, [])[0] == card

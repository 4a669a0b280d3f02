"""Scoring reference lists against a hand-made ground truth with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from raiha.io.reference_lists import ReferenceEntry, write_reference_list
from raiha.retrieval.ground_truth_score import score_entries, score_reference_lists, write_score

CLASSES = [
    {"name": "disc/solid", "pattern": "solid"},
    {"name": "disc/stripes", "pattern": "stripes"},
]


def _image(split: str, subset: str, light: int, identities: list[int], cls: int, name: str) -> dict:
    return {
        "split": split,
        "subset": subset,
        "illuminant": light,
        "objects": [{"identity": i, "class": cls} for i in identities],
        "foreground": {"identity": identities[-1], "class": cls, "composite_illuminant": 5},
        "composite": f"{subset}/composite_images/{name}_1_1.jpg",
        "mask": f"{subset}/masks/{name}_1.png",
    }


@pytest.fixture()
def ground_truth() -> dict:
    """Gallery: g1 (id 7, light 0), g2 (id 7, light 0), g3 (id 7, light 1), g4 (id 9, light 0).
    Query q1 (easy, id 7, light 0): relevant {g1, g2}. Query q2 (hard, id 9, light 1): none."""
    images = {
        "easy/real_images/g1.jpg": _image("train", "easy", 0, [3, 7], 1, "g1"),
        "easy/real_images/g2.jpg": _image("train", "easy", 0, [7], 1, "g2"),
        "hard/real_images/g3.jpg": _image("train", "hard", 1, [7], 1, "g3"),
        "hard/real_images/g4.jpg": _image("train", "hard", 0, [9], 0, "g4"),
        "easy/real_images/q1.jpg": _image("test", "easy", 0, [7], 1, "q1"),
        "hard/real_images/q2.jpg": _image("test", "hard", 1, [9], 0, "q2"),
    }
    return {"format_version": 1, "images": images, "classes": CLASSES}


def _entries() -> list[ReferenceEntry]:
    return [
        # q1: g1 hit, g3 right identity wrong light, g4 right light wrong identity
        ReferenceEntry(
            "easy/composite_images/q1_1_1.jpg",
            "easy/masks/q1_1.png",
            ["easy/real_images/g1.jpg", "hard/real_images/g3.jpg", "hard/real_images/g4.jpg"],
        ),
        # q2: g1 is wrong on both counts (id 7, light 0 vs id 9, light 1)
        ReferenceEntry(
            "hard/composite_images/q2_1_1.jpg", "hard/masks/q2_1.png", ["easy/real_images/g1.jpg"]
        ),
    ]


def test_known_precision_recall_and_error_split(ground_truth: dict) -> None:
    score = score_entries(_entries(), ground_truth, cap=2)
    overall = score["all"]
    assert (overall["queries"], overall["retrieved"], overall["relevant"], overall["hits"]) == (
        2,
        4,
        2,
        1,
    )
    assert overall["precision_micro"] == 0.25 and overall["recall_micro"] == 0.5
    assert overall["precision_per_query"] == pytest.approx((1 / 3 + 0) / 2, abs=1e-4)
    assert overall["recall_per_query"] == 0.5  # only q1 has relevant references
    assert overall["recall_at_cap"] == 0.5
    assert overall["error_counts"] == {
        "content_only": 1,
        "illumination_only": 1,
        "both": 1,
        "unknown": 0,
    }
    assert overall["errors"]["content_only"] == 0.25
    assert overall["same_illuminant"] == 0.5  # g1 and g4 for q1; none for q2
    assert score["subsets"]["easy"]["precision_micro"] == pytest.approx(1 / 3, abs=1e-4)
    assert score["subsets"]["hard"]["hits"] == 0 and score["subsets"]["hard"]["relevant"] == 0
    assert score["subsets"]["hard"]["recall_micro"] is None
    assert set(score["patterns"]) == {"solid", "stripes"}
    assert score["patterns"]["stripes"]["recall_micro"] == 0.5


def test_empty_lists_and_foreign_references(ground_truth: dict) -> None:
    entries = [
        ReferenceEntry("easy/composite_images/q1_1_1.jpg", "easy/masks/q1_1.png", []),
        ReferenceEntry(
            "hard/composite_images/q2_1_1.jpg",
            "hard/masks/q2_1.png",
            ["HCOCO/real_images/c1.jpg", "hard/real_images/q2.jpg"],  # foreign; own image
        ),
    ]
    overall = score_entries(entries, ground_truth)["all"]
    assert overall["empty"] == 1 and overall["recall_micro"] == 0.0
    assert overall["precision_micro"] == 0.0 and overall["error_counts"]["unknown"] == 2


def test_lists_from_files_and_unknown_composites(ground_truth: dict, tmp_path: Path) -> None:
    path = write_reference_list(tmp_path / "IHD_test.jsonl", _entries())
    from_file = score_reference_lists({"test": path}, ground_truth)
    assert from_file["test"]["all"]["hits"] == 1
    written = write_score(tmp_path / "score.json", from_file)
    assert written.read_text().startswith("{")
    stranger = [ReferenceEntry("easy/composite_images/zz_1_1.jpg", "easy/masks/zz_1.png", [])]
    with pytest.raises(KeyError, match="zz_1_1.jpg.*not in the ground truth"):
        score_entries(stranger, ground_truth)

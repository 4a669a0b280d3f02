"""RAHarmony4 JSONL reference lists: the authors' test list, round trips and bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raiha.io.errors import RaihaDataError
from raiha.io.naming import mask_name_for, real_name_for
from raiha.io.reference_lists import (
    ReferenceEntry,
    read_reference_list,
    reference_map,
    write_reference_list,
)


def _real_path(composite: str) -> str:
    subset = composite.split("/")[0]
    return f"{subset}/real_images/{real_name_for(composite)}"


def test_authors_test_list(shared_data_dir: Path) -> None:
    list_path = shared_data_dir / "raharmony4" / "IHD_test_temp.jsonl"
    test_list = shared_data_dir / "iharmony4" / "IHD_test.txt"
    if not (list_path.is_file() and test_list.is_file()):
        pytest.skip("RAHarmony4 / iHarmony4 test lists are absent")
    entries = read_reference_list(list_path)
    assert len(entries) == 2248
    assert all(1 <= len(entry.refs) <= 4 for entry in entries)
    assert {len(entry.refs) for entry in entries} == {1, 2, 3, 4}
    test_composites = {line.strip() for line in test_list.read_text().splitlines() if line.strip()}
    assert all(entry.input in test_composites for entry in entries)
    test_reals = {_real_path(composite) for composite in test_composites}
    for entry in entries:
        subset = entry.input.split("/")[0]
        assert entry.mask == f"{subset}/masks/{mask_name_for(entry.input)}"
        assert _real_path(entry.input) not in entry.refs  # never the composite's own real image
        assert all(ref.split("/")[1] == "real_images" for ref in entry.refs)
        # HCOCO real images can serve both splits; the other subsets' refs are never test images.
        assert not any(ref in test_reals for ref in entry.refs if not ref.startswith("HCOCO/"))
    assert reference_map(entries)["HAdobe5k/composite_images/a3630_1_5.jpg"] == [
        "HCOCO/real_images/c437938.jpg"
    ]


def test_round_trip_keeps_extra_keys(tmp_path: Path) -> None:
    entries = [
        ReferenceEntry(
            "HAdobe5k/composite_images/a1_1_1.jpg",
            "HAdobe5k/masks/a1_1.png",
            ["HCOCO/real_images/c2.jpg"],
        ),
        ReferenceEntry(
            "HCOCO/composite_images/c3_4_1.jpg",
            "HCOCO/masks/c3_4.png",
            ["HFlickr/real_images/f5.jpg", "HCOCO/real_images/c6.jpg"],
            extra={"scores": [0.91, 0.75], "note": {"k": 1}},
        ),
    ]
    path = write_reference_list(tmp_path / "lists" / "refs.jsonl", entries)
    assert read_reference_list(path) == entries
    second_line = json.loads(path.read_text().splitlines()[1])
    assert list(second_line) == ["input", "mask", "refs", "scores", "note"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["refs.jsonl"]
    assert reference_map(entries) == {
        "HAdobe5k/composite_images/a1_1_1.jpg": ["HCOCO/real_images/c2.jpg"],
        "HCOCO/composite_images/c3_4_1.jpg": [
            "HFlickr/real_images/f5.jpg",
            "HCOCO/real_images/c6.jpg",
        ],
    }


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    line = json.dumps(
        {"input": "H/composite_images/a_1_1.jpg", "mask": "H/masks/a_1.png", "refs": []}
    )
    (tmp_path / "r.jsonl").write_text(f"\n{line}\r\n\n")
    assert [entry.input for entry in read_reference_list(tmp_path / "r.jsonl")] == [
        "H/composite_images/a_1_1.jpg"
    ]


@pytest.mark.parametrize(
    ("bad_line", "pattern"),
    [
        ('{"input": "a", "mask": "b", "refs": [', "not valid JSON"),
        ('{"input": "a", "refs": []}', r"missing key\(s\) \['mask'\]"),
        ('{"input": "a", "mask": "b", "refs": "c.jpg"}', "list of path strings"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"input": 3, "mask": "b", "refs": []}', "path strings"),
        ('{"input": "x", "mask": "b", "refs": []}', "listed again"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad_line: str, pattern: str) -> None:
    good = json.dumps({"input": "x", "mask": "m", "refs": ["r"]})
    (tmp_path / "bad.jsonl").write_text(f"{good}\n\n{bad_line}\n")
    with pytest.raises(RaihaDataError, match=pattern) as error:
        read_reference_list(tmp_path / "bad.jsonl")
    assert "bad.jsonl:3:" in str(error.value)


def test_missing_list_and_duplicate_map(tmp_path: Path) -> None:
    with pytest.raises(RaihaDataError, match=r"absent\.jsonl not found"):
        read_reference_list(tmp_path / "absent.jsonl")
    twice = [ReferenceEntry("x", "m", ["r"]), ReferenceEntry("x", "m", ["s"])]
    with pytest.raises(RaihaDataError, match="appears twice"):
        reference_map(twice)

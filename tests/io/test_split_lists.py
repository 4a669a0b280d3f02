"""Split lists in both layouts (IHD_<split>.txt and per-subset lists) and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raiha.io.errors import RaihaDataError
from raiha.io.split_lists import (
    IHARMONY4_SPLIT_SIZES,
    IHARMONY4_SUBSETS,
    HarmonizationRecord,
    read_split,
    write_split,
)

# Two or three composites per subset, in each subset's naming style.
MINI_NAMES: dict[str, list[str]] = {
    "HCOCO": ["c21070_1396052_1.jpg", "c21070_1396052_2.jpg", "c9_77_1.jpg"],
    "HAdobe5k": ["a3630_1_5.jpg", "a3630_1_1.jpg"],
    "HFlickr": ["f636_1_2.jpg", "f855_1_1.jpg"],
    "Hday2night": ["d90000001-11_1_1.jpg", "d1048-20120628-200951_1_3.jpg"],
}


def write_mini_tree(root: Path) -> list[str]:
    """Tiny random images for MINI_NAMES under ``root``; returns the IHD-style lines."""
    rng = np.random.default_rng(0)
    lines = []
    for subset, names in MINI_NAMES.items():
        for name in names:
            stem = name[: -len(".jpg")]
            mask_stem, real_stem = stem.rsplit("_", 1)[0], stem.rsplit("_", 2)[0]
            for folder, file_name in (
                ("composite_images", name),
                ("real_images", f"{real_stem}.jpg"),
                ("masks", f"{mask_stem}.png"),
            ):
                (root / subset / folder).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)  # [H, W, 3]
                if folder == "masks":
                    pixels = np.where(pixels > 128, 255, 0).astype(np.uint8)
                Image.fromarray(pixels).save(root / subset / folder / file_name)
            lines.append(f"{subset}/composite_images/{name}")
    return lines


@pytest.fixture
def mini_root(tmp_path: Path) -> Path:
    root = tmp_path / "iHarmony4"
    lines = write_mini_tree(root)
    (root / "IHD_test.txt").write_text("\n".join(lines) + "\n")
    return root


def test_ihd_list_records_point_at_files(mini_root: Path) -> None:
    records = read_split(mini_root, "test")
    assert len(records) == sum(len(names) for names in MINI_NAMES.values())
    assert records[0] == HarmonizationRecord(
        subset="HCOCO",
        composite="HCOCO/composite_images/c21070_1396052_1.jpg",
        mask="HCOCO/masks/c21070_1396052.png",
        real="HCOCO/real_images/c21070.jpg",
    )
    for record in records:
        for relative in (record.composite, record.mask, record.real):
            assert (mini_root / relative).is_file(), relative


@pytest.mark.parametrize("nested", [True, False])
def test_per_subset_lists_give_the_same_records(mini_root: Path, nested: bool) -> None:
    expected = read_split(mini_root, "test")
    (mini_root / "IHD_test.txt").unlink()
    for subset, names in MINI_NAMES.items():
        folder = mini_root / subset if nested else mini_root
        (folder / f"{subset}_test.txt").write_text(
            "".join(f"{name}\r\n" for name in names) + "\r\n"
        )
    assert read_split(mini_root, "test") == expected
    with pytest.raises(RaihaDataError, match="no 'train' split list"):
        read_split(mini_root, "train")


def test_crlf_blank_lines_and_short_paths(tmp_path: Path) -> None:
    (tmp_path / "IHD_train.txt").write_text(
        "\r\nHAdobe5k/composite_images/a1_1_1.jpg\r\n\r\n  HFlickr/f2_1_3.jpg  \r\n"
    )
    records = read_split(tmp_path, "train")
    assert [record.composite for record in records] == [
        "HAdobe5k/composite_images/a1_1_1.jpg",
        "HFlickr/composite_images/f2_1_3.jpg",
    ]
    assert records[1].mask == "HFlickr/masks/f2_1.png"


def test_subset_filter_keeps_list_order(mini_root: Path) -> None:
    records = read_split(mini_root, "test", subsets=["Hday2night", "HAdobe5k"])
    assert [record.composite.split("/")[-1] for record in records] == MINI_NAMES[
        "HAdobe5k"
    ] + MINI_NAMES["Hday2night"]
    with pytest.raises(RaihaDataError, match="HSomething") as error:
        read_split(mini_root, "test", subsets=["HSomething"])
    for name in IHARMONY4_SUBSETS:
        assert name in str(error.value)


def test_missing_root_and_lists(tmp_path: Path) -> None:
    with pytest.raises(RaihaDataError, match=r"data\.root=/path/to/iHarmony4") as error:
        read_split(tmp_path / "absent", "train")
    assert "absent" in str(error.value)
    with pytest.raises(RaihaDataError) as error:
        read_split(tmp_path, "train")
    message = str(error.value)
    assert "IHD_train.txt" in message and "<Subset>_train.txt" in message


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "IHD_test.txt").write_text(
        "HAdobe5k/composite_images/a1_1_1.jpg\nHAdobe5k/masks/x/a1_1_1.jpg\n"
    )
    with pytest.raises(RaihaDataError, match=r"IHD_test\.txt:2:"):
        read_split(tmp_path, "test")
    (tmp_path / "IHD_test.txt").write_text(
        "HAdobe5k/composite_images/a1_1_1.jpg\n\nHAdobe5k/composite_images/a1.jpg\n"
    )
    with pytest.raises(RaihaDataError, match=r"IHD_test\.txt:3: .*'a1\.jpg'"):
        read_split(tmp_path, "test")
    (tmp_path / "IHD_test.txt").unlink()
    (tmp_path / "HCOCO_test.txt").write_text("c1_2_3.jpg\nc1.jpg\n")
    with pytest.raises(RaihaDataError, match=r"HCOCO_test\.txt:2:"):
        read_split(tmp_path, "test")


def test_write_split_round_trip(mini_root: Path, tmp_path: Path) -> None:
    records = read_split(mini_root, "test")
    out_root = tmp_path / "written"
    path = write_split(out_root, "val", records[::-1])
    assert path == out_root / "IHD_val.txt"
    assert read_split(out_root, "val") == records[::-1]
    assert [p.name for p in out_root.iterdir()] == ["IHD_val.txt"]  # no temp file left


def test_real_test_list_counts(shared_data_dir: Path, tmp_path: Path) -> None:
    real_list = shared_data_dir / "iharmony4" / "IHD_test.txt"
    if not real_list.is_file():
        pytest.skip(f"{real_list} is absent")
    shutil.copy(real_list, tmp_path / "IHD_test.txt")
    records = read_split(tmp_path, "test")
    expected = IHARMONY4_SPLIT_SIZES["test"]
    assert len(records) == expected["total"] == 7404
    for subset in IHARMONY4_SUBSETS:
        assert sum(record.subset == subset for record in records) == expected[subset]
    assert records[0].composite == "HAdobe5k/composite_images/a3630_1_5.jpg"
    assert records[0].mask == "HAdobe5k/masks/a3630_1.png"
    assert len({record.composite for record in records}) == 7404
    hflickr = read_split(tmp_path, "test", subsets=["HFlickr"])
    assert len(hflickr) == 828 and {record.subset for record in hflickr} == {"HFlickr"}
    assert sum(IHARMONY4_SPLIT_SIZES["train"][name] for name in IHARMONY4_SUBSETS) == 65742

"""The loader on real iHarmony4 files from ../shared/data/real_samples (linked into a tmp tree).

HAdobe5k triple a0002 (4256 x 2832 per SOURCES.txt; stored portrait, 2832 wide): real, RGB PNG
mask and composite a0002_1_4. HCOCO-style triple: real c35030.jpg, its JPEG mask saved as
the PNG the layout expects (grey values kept, so thresholding is still exercised), and the
colour-transferred c35030_gct.jpg as composite c35030_434421_1.jpg.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.resize_cache import build_resized_cache
from raiha.io.image_io import image_size, load_mask
from raiha.io.split_lists import make_record, read_split, write_split

SIZE = 256
IHARMONY4_SAMPLES = "real_samples/Image-Harmonization-Dataset-iHarmony4"
ADOBE = "HAdobe5k/composite_images/a0002_1_4.jpg"
COCO = "HCOCO/composite_images/c35030_434421_1.jpg"


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, target)


@pytest.fixture(scope="module")
def real_root(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples = shared_data_dir / IHARMONY4_SAMPLES
    coco_dir = samples / "color_transfer_methods" / "data"
    needed = [coco_dir / "c35030.jpg", coco_dir / "c35030_434421.jpg", coco_dir / "c35030_gct.jpg"]
    if not all(path.is_file() for path in needed):
        pytest.skip(f"HCOCO sample files under {coco_dir} are absent")
    root = tmp_path_factory.mktemp("real_iharmony4")
    _link(coco_dir / "c35030.jpg", root / "HCOCO/real_images/c35030.jpg")
    _link(coco_dir / "c35030_gct.jpg", root / COCO)
    _link(
        coco_dir / "c35030_434421.jpg", root / "HCOCO/masks/c35030_434421.jpg"
    )  # for mask_suffix=".jpg"
    Image.open(coco_dir / "c35030_434421.jpg").save(root / "HCOCO/masks/c35030_434421.png")
    lines = [COCO]
    adobe = [samples / "data" / name for name in ("a0002.jpg", "a0002_1.png", "a0002_1_4.jpg")]
    if all(path.is_file() for path in adobe):  # SOURCES.txt: the composite may be left out
        _link(adobe[0], root / "HAdobe5k/real_images/a0002.jpg")
        _link(adobe[1], root / "HAdobe5k/masks/a0002_1.png")
        _link(adobe[2], root / ADOBE)
        lines.insert(0, ADOBE)
    (root / "IHD_test.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def items(real_root: Path) -> dict[str, dict[str, Any]]:
    """Each record's item with and without the composite rebuild (decoded once per module)."""
    records = read_split(real_root, "test")
    rebuilt = HarmonizationDataset(real_root, records, image_size=SIZE)
    as_is = HarmonizationDataset(real_root, records, image_size=SIZE, rebuild_composite=False)
    return {
        record.composite: {"rebuilt": rebuilt[index], "as_is": as_is[index], "record": record}
        for index, record in enumerate(records)
    }


def _item(items: dict[str, dict[str, Any]], composite: str) -> dict[str, Any]:
    if composite not in items:
        pytest.skip(f"{composite} is not among the real samples")
    return items[composite]


@pytest.mark.parametrize("composite", [ADOBE, COCO])
def test_shapes_ranges_and_mask(
    items: dict[str, dict[str, Any]], real_root: Path, composite: str
) -> None:
    entry = _item(items, composite)
    item = entry["rebuilt"]
    assert item["composite"].shape == item["real"].shape == (3, SIZE, SIZE)
    assert item["mask"].shape == (1, SIZE, SIZE)
    for key in ("composite", "real"):
        assert -1 <= item[key].min() < item[key].max() <= 1
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    full_mask = load_mask(real_root / entry["record"].mask)
    assert abs(item["mask"].mean().item() - full_mask.mean()) < 0.01


@pytest.mark.parametrize(("composite", "fg_shift"), [(ADOBE, 20), (COCO, 10)])
def test_rebuilt_composite(
    items: dict[str, dict[str, Any]], composite: str, fg_shift: float
) -> None:
    entry = _item(items, composite)
    rebuilt, as_is = entry["rebuilt"], entry["as_is"]
    background = (rebuilt["mask"] == 0).expand(3, -1, -1)  # [3, S, S]
    assert torch.equal(rebuilt["composite"][background], rebuilt["real"][background])
    assert torch.equal(rebuilt["composite"][~background], as_is["composite"][~background])
    # The composites differ from the real image outside the mask by JPEG noise only ...
    noise = (as_is["composite"] - as_is["real"])[background].abs().mean().item() * 127.5
    assert 0 < noise < 3
    # ... and inside it by a real colour change.
    change = (as_is["composite"] - as_is["real"])[~background].abs().mean().item() * 127.5
    assert change > fg_shift


def test_jpeg_mask_layout_option(real_root: Path, items: dict[str, dict[str, Any]]) -> None:
    records = read_split(real_root, "test", subsets=["HCOCO"], mask_suffix=".jpg")
    assert records == [make_record("HCOCO", "c35030_434421_1.jpg", mask_suffix=".jpg")]
    item = HarmonizationDataset(real_root, records, image_size=SIZE)[0]
    assert torch.equal(item["mask"], _item(items, COCO)["rebuilt"]["mask"])


def test_resize_cache_on_real_files(
    real_root: Path, items: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    records = read_split(real_root, "test", subsets=["HCOCO"])
    cache_dir = build_resized_cache(real_root, records, SIZE, tmp_path / "cache")
    cached = HarmonizationDataset(real_root, records, image_size=SIZE, cache_dir=cache_dir)[0]
    for key in ("composite", "mask", "real"):
        assert torch.equal(cached[key], _item(items, COCO)["rebuilt"][key])
    write_split(tmp_path / "copy", "test", records)
    assert read_split(tmp_path / "copy", "test") == records


@pytest.mark.parametrize(
    ("mask", "composite"),
    [
        (
            "DCCF/assets/interactive_images_H/a0782_1_5_mask.png",
            "DCCF/assets/interactive_images_H/a0782_1_5_input.jpg",
        ),
        (
            "Harmonizer/demo/image_harmonization/example/mask/f636_1.jpg",
            "Harmonizer/demo/image_harmonization/example/composite/f636_1.jpg",
        ),
        (
            "Harmonizer/demo/image_harmonization/example/mask/f855_1.jpg",
            "Harmonizer/demo/image_harmonization/example/composite/f855_1.jpg",
        ),
    ],
)
def test_other_real_masks(shared_data_dir: Path, mask: str, composite: str) -> None:
    mask_path, composite_path = (
        shared_data_dir / "real_samples" / mask,
        shared_data_dir / "real_samples" / composite,
    )
    if not (mask_path.is_file() and composite_path.is_file()):
        pytest.skip(f"{mask_path} or {composite_path} is absent")
    loaded = load_mask(mask_path)
    assert loaded.shape[::-1] == image_size(composite_path)
    assert 0.05 < loaded.mean() < 0.95
    grey = np.asarray(Image.open(mask_path).convert("L"))
    assert ((grey > 30) & (grey < 225)).mean() < 0.005  # near-binary even when stored as JPEG

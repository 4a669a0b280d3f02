"""HarmonizationDataset on a generated miniature iHarmony4 tree: items, rebuild, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_mask, load_rgb, resize_mask, resize_rgb
from raiha.io.split_lists import HarmonizationRecord, make_record

SIZE = 32


def write_triple(
    root: Path,
    record: HarmonizationRecord,
    width: int = 60,
    height: int = 40,
    box: tuple[int, int, int, int] = (10, 5, 40, 30),
    seed: int = 0,
) -> None:
    """Real image, mask (box = left, top, right, bottom; 3-channel 0/255) and a composite whose
    foreground is shifted in colour and whose background is the real image."""
    rng = np.random.default_rng(seed)
    real = rng.integers(40, 200, (height, width, 3), dtype=np.uint8)  # [H, W, 3]
    mask = np.zeros((height, width, 3), dtype=np.uint8)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = 255
    composite = real.copy()
    composite[top:bottom, left:right] = np.clip(
        composite[top:bottom, left:right].astype(int) + 50, 0, 255
    )
    for relative, pixels in (
        (record.real, real),
        (record.mask, mask),
        (record.composite, composite),
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / relative, quality=90)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[HarmonizationRecord]]:
    root = tmp_path / "iHarmony4"
    records = [
        make_record("HAdobe5k", "a1_1_1.jpg"),
        make_record("HAdobe5k", "a1_1_2.jpg"),
        make_record("Hday2night", "d7-1_1_1.jpg"),
        make_record("HCOCO", "c5_99_1.jpg"),
    ]
    for seed, record in enumerate(records):
        write_triple(root, record, seed=seed)
    return root, records


def test_items_shapes_ranges_and_labels(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    dataset = HarmonizationDataset(root, records, image_size=SIZE)
    assert len(dataset) == 4
    assert dataset.subset_names == ["HCOCO", "HAdobe5k", "Hday2night"]
    item = dataset[2]
    assert item["composite"].shape == (3, SIZE, SIZE) and item["real"].shape == (3, SIZE, SIZE)
    assert item["mask"].shape == (1, SIZE, SIZE)
    for key in ("composite", "mask", "real"):
        assert item[key].dtype == torch.float32
    assert item["composite"].min() >= -1 and item["composite"].max() <= 1
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert (item["subset"], item["subset_idx"], item["index"]) == ("Hday2night", 2, 2)
    assert item["composite_path"] == "Hday2night/composite_images/d7-1_1_1.jpg"
    expected_real = resize_rgb(load_rgb(root / records[2].real), SIZE)
    torch.testing.assert_close(
        item["real"], torch.from_numpy(expected_real).permute(2, 0, 1).float() / 127.5 - 1
    )
    expected_mask = resize_mask(load_mask(root / records[2].mask), SIZE)
    assert torch.equal(item["mask"][0].bool(), torch.from_numpy(expected_mask))


def test_rebuild_composite(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    rebuilt = HarmonizationDataset(root, records, image_size=SIZE)[0]
    original = HarmonizationDataset(root, records, image_size=SIZE, rebuild_composite=False)[0]
    background = rebuilt["mask"] == 0  # [1, S, S]
    foreground = ~background
    assert torch.equal(
        rebuilt["composite"][background.expand(3, -1, -1)],
        rebuilt["real"][background.expand(3, -1, -1)],
    )
    assert torch.equal(
        rebuilt["composite"][foreground.expand(3, -1, -1)],
        original["composite"][foreground.expand(3, -1, -1)],
    )
    assert not torch.equal(
        original["composite"][background.expand(3, -1, -1)],
        original["real"][background.expand(3, -1, -1)],
    )
    shift = (rebuilt["composite"] - rebuilt["real"])[foreground.expand(3, -1, -1)].mean() * 127.5
    assert 35 < shift < 65  # the +50 foreground shift survives JPEG and resizing


def test_custom_subset_names_and_collate(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    dataset = HarmonizationDataset(
        root, records, image_size=SIZE, subset_names=["Hday2night", "HCOCO", "HAdobe5k", "HFlickr"]
    )
    assert [dataset[i]["subset_idx"] for i in range(4)] == [2, 2, 0, 1]
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["composite"].shape == (3, 3, SIZE, SIZE) and batch["mask"].shape == (
        3,
        1,
        SIZE,
        SIZE,
    )
    assert batch["subset_idx"].tolist() == [2, 2, 0]
    with pytest.raises(RaihaDataError, match=r"\['HCOCO', 'Hday2night'\] are not in subset_names"):
        HarmonizationDataset(root, records, subset_names=["HAdobe5k"])


@pytest.mark.parametrize("kind", ["mask", "real"])
def test_missing_files(tree: tuple[Path, list[HarmonizationRecord]], kind: str) -> None:
    root, records = tree
    missing = getattr(records[3], kind)
    (root / missing).unlink()
    with pytest.raises(RaihaDataError, match="1 of 10 dataset files are missing") as error:
        HarmonizationDataset(root, records, image_size=SIZE)
    assert missing.split("/")[-1] in str(error.value)
    lazy = HarmonizationDataset(root, records, image_size=SIZE, validate=False)
    lazy[0]
    with pytest.raises(RaihaDataError, match="not found") as error:
        lazy[3]
    assert missing.split("/")[-1] in str(error.value)


def test_missing_file_list_is_capped(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    for record in records:
        (root / record.composite).unlink()
        (root / record.real).unlink(missing_ok=True)  # a1.jpg is shared
    with pytest.raises(RaihaDataError, match="7 of 10 dataset files are missing") as error:
        HarmonizationDataset(root, records)
    assert str(error.value).count(".jpg") == 5


def test_size_mismatch(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    Image.new("L", (64, 48), 255).save(root / records[3].mask)
    with pytest.raises(
        RaihaDataError, match=r"mask .*c5_99\.png is 64x48 but composite .*c5_99_1\.jpg is 60x40"
    ):
        HarmonizationDataset(root, records, image_size=SIZE)[3]
    write_triple(root, records[3])
    Image.new("RGB", (40, 60)).save(root / records[3].real)
    with pytest.raises(RaihaDataError, match=r"real image .*c5\.jpg is 40x60"):
        HarmonizationDataset(root, records, image_size=SIZE)[3]


def test_empty_masks(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    Image.new("RGB", (60, 40)).save(root / records[3].mask)
    with pytest.raises(RaihaDataError, match=r"mask .*c5_99\.png is empty \(no pixel"):
        HarmonizationDataset(root, records, image_size=SIZE)[3]
    write_triple(root, records[3], box=(30, 20, 31, 21))  # one pixel of 60 x 40
    with pytest.raises(RaihaDataError, match=r"mask .*c5_99\.png is empty after resizing to 8x8"):
        HarmonizationDataset(root, records, image_size=8)[3]


def test_truncated_composite(tree: tuple[Path, list[HarmonizationRecord]]) -> None:
    root, records = tree
    path = root / records[1].composite
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(RaihaDataError, match=r"a1_1_2\.jpg.*corrupt or truncated"):
        HarmonizationDataset(root, records, image_size=SIZE)[1]

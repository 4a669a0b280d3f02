"""make_composites: reproducible from the manifest, bit-identical backgrounds, split by photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raiha.composites import (
    CompositeConfig,
    make_composite,
    make_composites,
    read_manifest,
    rebuild_composite,
)
from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_mask, load_rgb
from raiha.io.split_lists import read_split
from tests.composites.photo_factory import write_photo_folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("own")
    photos, masks = write_photo_folder(root, 8)
    manifest = make_composites(photos, masks, root / "out", CompositeConfig(seed=3, composites_per_object=3))
    return root / "out", manifest


def test_manifest_reproduces_every_composite_from_its_seed(dataset: tuple[Path, dict]) -> None:
    out, manifest = dataset
    assert read_manifest(out) == json.loads((out / "manifest.json").read_text())
    assert len(manifest["composites"]) == 8 * 3
    assert {entry["change"] for entry in manifest["composites"]} == {"lab_transfer", "illuminant", "tone", "lut"}
    for entry in manifest["composites"]:
        rebuilt = rebuild_composite(out, manifest, entry)
        assert (rebuilt.change, rebuilt.params) == (entry["change"], entry["params"])
        assert np.array_equal(rebuilt.image, load_rgb(out / entry["composite"])), entry["composite"]


def test_backgrounds_are_bit_identical_and_foregrounds_visibly_changed(dataset: tuple[Path, dict]) -> None:
    out, manifest = dataset
    cfg = CompositeConfig.from_mapping(manifest["config"])
    for entry in manifest["composites"]:
        composite, real = load_rgb(out / entry["composite"]), load_rgb(out / entry["real"])
        mask = load_mask(out / entry["mask"])
        assert np.array_equal(composite[~mask], real[~mask])
        change = np.abs(composite[mask].astype(int) - real[mask].astype(int)).mean()
        assert change == pytest.approx(entry["foreground_change"], abs=1e-4)
        assert change >= cfg.min_foreground_change
        assert entry["clipped_fraction"] <= cfg.max_clipped_fraction


def test_split_by_photo_and_readable_by_the_loader(dataset: tuple[Path, dict]) -> None:
    out, manifest = dataset
    train, test = read_split(out, "train"), read_split(out, "test")
    assert len(train) + len(test) == len(manifest["composites"]) and test
    assert not {r.real for r in train} & {r.real for r in test}  # no photo on both sides
    photo_split = {photo["id"]: photo["split"] for photo in manifest["photos"]}
    assert all(photo_split[e["photo"]] == e["split"] for e in manifest["composites"])
    item = HarmonizationDataset(out, test, image_size=32)[0]
    assert item["composite"].shape == (3, 32, 32) and item["subset"] == "own"
    for entry in manifest["composites"]:  # lab_transfer copies objects of the same split only
        if entry["change"] == "lab_transfer":
            assert photo_split[entry["params"]["reference"].rsplit("_", 1)[0]] == entry["split"]
            assert not entry["params"]["reference"].startswith(entry["photo"] + "_")


def test_same_seed_same_dataset_and_jpeg_photos_are_copied(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 4, photo_format="jpg")
    first = make_composites(photos, masks, tmp_path / "a", CompositeConfig(seed=1))
    second = make_composites(photos, masks, tmp_path / "b", CompositeConfig(seed=1))
    other = make_composites(photos, masks, tmp_path / "c", CompositeConfig(seed=2))
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert strip(first) == strip(second) != strip(other)
    assert (tmp_path / "a/own/real_images/photo-0.jpg").read_bytes() == (photos / "photo_0.jpg").read_bytes()


def test_a_pure_gain_composite_has_the_expected_pixels() -> None:
    real = np.full((6, 6, 3), 128, dtype=np.uint8)
    mask = np.zeros((6, 6), dtype=bool)
    mask[2:5, 1:4] = True
    cfg = CompositeConfig(changes={"illuminant": {"weight": 1.0, "gain_range": 0.5, "exposure_range": 0.0}})
    composite = make_composite(real, mask, seed=11, cfg=cfg, references=[], reference_stats={})
    assert composite.change == "illuminant" and composite.params["exposure"] == 0.0
    linear = ((128 / 255 + 0.055) / 1.055) ** 2.4
    expected = [round(255 * min(1.0, 1.055 * (g * linear) ** (1 / 2.4) - 0.055)) for g in composite.params["gains"]]
    assert (composite.image[mask] == np.array(expected, dtype=np.uint8)).all()
    assert (composite.image[~mask] == 128).all()


def test_only_enabled_changes_are_drawn(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 3)
    changes = {"tone": {"weight": 1.0}, "lut": {"weight": 0.0}}
    manifest = make_composites(photos, masks, tmp_path / "out", CompositeConfig(changes=changes))
    assert {entry["change"] for entry in manifest["composites"]} == {"tone"}


def test_instance_id_masks_give_one_composite_per_object(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 3)
    ids = np.zeros((40, 56), dtype=np.uint8)
    ids[2:14, 2:20], ids[20:38, 30:54], ids[0, 0] = 3, 7, 9  # id 9: a single pixel, below the minimum
    Image.fromarray(ids).save(masks / "photo_0.png")
    manifest = make_composites(photos, masks, tmp_path / "out", CompositeConfig(composites_per_object=1))
    photo = next(p for p in manifest["photos"] if p["id"] == "photo-0")
    assert [o["instance_id"] for o in photo["objects"]] == [3, 7]
    assert load_mask(tmp_path / "out/own/masks/photo-0_2.png").sum() == 18 * 24
    assert any("id 9" in s["file"] and "min_object_fraction" in s["reason"] for s in manifest["skipped"])


def test_photos_without_masks_empty_and_full_masks_are_listed(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 5)
    (masks / "photo_0.png").unlink()
    Image.fromarray(np.zeros((40, 56), dtype=np.uint8)).save(masks / "photo_1.png")
    Image.fromarray(np.full((40, 56), 255, dtype=np.uint8)).save(masks / "photo_2.png")
    manifest = make_composites(photos, masks, tmp_path / "out", CompositeConfig())
    assert {"file": str(photos / "photo_0.png"), "reason": "no mask"} in manifest["skipped"]
    text = json.dumps(manifest["skipped"])
    assert "empty mask" in text and "nearly full mask" in text
    assert sorted(p["id"] for p in manifest["photos"]) == ["photo-3", "photo-4"]
    with pytest.raises(RaihaDataError, match="photo_0.png.*no mask|no mask for photo .*photo_0"):
        make_composites(photos, masks, tmp_path / "strict", CompositeConfig(missing_mask="error"))


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 3)
    Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(masks / "photo_1.png")
    with pytest.raises(RaihaDataError, match=r"mask .*photo_1.png is 20x20 but photo .*photo_1.png is 56x40"):
        make_composites(photos, masks, tmp_path / "out", CompositeConfig())
    skipped = make_composites(photos, masks, tmp_path / "out", CompositeConfig(unreadable="skip"))
    assert any("20x20" in s["reason"] for s in skipped["skipped"])
    (masks / "photo_1.png").unlink()
    (photos / "photo_2.png").write_bytes(b"not a png")
    with pytest.raises(RaihaDataError, match="photo_2.png"):
        make_composites(photos, masks, tmp_path / "out2", CompositeConfig())
    with pytest.raises(RaihaDataError, match="1 usable photo.*at least 2"):
        make_composites(photos, masks, tmp_path / "out3", CompositeConfig(unreadable="skip"))


def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    photos, masks = write_photo_folder(tmp_path, 2)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(RaihaDataError, match="refusing to replace"):
        make_composites(photos, masks, tmp_path / "mine", CompositeConfig())
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_command_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    photos, masks = write_photo_folder(tmp_path, 3)
    (masks / "photo_2.png").unlink()
    env = {**os.environ, "RAIHA_LOG_DIR": str(tmp_path / "logs")}
    command = [sys.executable, "-m", "raiha.make_composites", f"photos={photos}", f"masks={masks}",
               f"out={tmp_path / 'out'}", "composites.composites_per_object=1", "composites.seed=5"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 train and 1 test composites from 2 photos" in result.stdout
    assert f"skipped {photos / 'photo_2.png'}: no mask" in result.stdout
    assert read_manifest(tmp_path / "out")["config"]["seed"] == 5

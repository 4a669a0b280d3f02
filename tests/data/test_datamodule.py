"""The datamodule: validation hold-out, subsets and loaders on a tiny generated world."""

from __future__ import annotations

from pathlib import Path

import pytest

from raiha.data.datamodule import HarmonizationDataModule, hold_out_validation
from raiha.io.split_lists import make_record


def _records() -> list:
    names = [f"a{real:04d}_1_{variant}.jpg" for real in range(20) for variant in (1, 2, 3)]
    return [make_record("HAdobe5k", name) for name in names]


def test_hold_out_groups_composites_by_real_image_and_is_seeded() -> None:
    records = _records()
    train, val = hold_out_validation(records, val_size=10, seed=3)
    assert 10 <= len(val) <= 12 and len(train) + len(val) == len(records)
    assert not {r.real for r in train} & {r.real for r in val}
    again_train, again_val = hold_out_validation(records, val_size=10, seed=3)
    assert again_val == val and again_train == train
    _, other_val = hold_out_validation(records, val_size=10, seed=4)
    assert other_val != val
    assert hold_out_validation(records, val_size=0, seed=3) == (records, [])


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown data source 'coco'"):
        HarmonizationDataModule(source="coco")


def test_synthetic_datamodule_end_to_end(tmp_path: Path) -> None:
    world = {"image_size": 32, "num_train": 30, "num_test": 10, "num_identities": 8}
    datamodule = HarmonizationDataModule(
        source="synthetic", data_dir=str(tmp_path), image_size=32, batch_size=4, val_size=6, synthetic=world
    )
    datamodule.prepare_data()
    assert (datamodule.dataset_root() / "world.json").is_file()
    datamodule.setup("fit")
    assert datamodule.subset_names == ["easy", "hard"]
    assert len(datamodule.train_set) + len(datamodule.val_set) == 30 and len(datamodule.test_set) == 10
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["composite"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert set(batch["subset"]) <= {"easy", "hard"}
    test_indices = [int(i) for b in datamodule.test_dataloader() for i in b["index"]]
    assert test_indices == list(range(10))

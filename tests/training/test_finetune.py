"""make_composites -> pre-train -> fine-tune (+experiment=finetune init_from=...) -> harmonize."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from raiha.composites import CompositeConfig, make_composites
from raiha.inference.harmonizer import Harmonizer
from raiha.io.image_io import load_mask, load_rgb
from raiha.io.split_lists import read_split
from raiha.models.checkpoint_io import CheckpointError, read_checkpoint
from raiha.models.registry import create_harmonizer
from raiha.train import train
from raiha.training.finetune import apply_init_from, freeze_encoder
from tests.composites.photo_factory import write_photo_folder
from tests.hydra_helpers import compose_config

OWN_DATA = ["data.subsets=null", "data.image_size=32", "data.val_size=3", "data.batch_size=8",
            "data.eval_batch_size=16", "data.num_workers=0", "data.pin_memory=false", "data.resize_cache=false",
            "trainer.accelerator=cpu", "logger=csv"]


def _net_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(checkpoint)["state_dict"]
    return {key.removeprefix("net."): value for key, value in state.items() if key.startswith("net.")}


def test_freeze_encoder_stops_the_stem_and_encoder_only() -> None:
    net = create_harmonizer("unet", base_width=4)
    count = freeze_encoder(net)
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    assert count == len(frozen) > 0
    assert all(name.split(".")[0] in ("stem", "encoder") for name in frozen)
    assert any(p.requires_grad for name, p in net.named_parameters() if name.startswith("decoder"))


def test_an_incompatible_init_from_is_refused_with_its_keys(tmp_path: Path) -> None:
    torch.save(create_harmonizer("unet", base_width=4).state_dict(), tmp_path / "unet.pth")
    cfg = compose_config("train", ["+experiment=finetune", f"init_from={tmp_path / 'unet.pth'}", "data.root=/x",
                                   "model.net.base_width=4", "model.net.attention=plain", "model.net.semantic_channels=0"],
                         output_dir=tmp_path / "run", data_dir=tmp_path / "data")
    module = torch.nn.Module()
    module.net = create_harmonizer("rhnet", **{k: v for k, v in OmegaConf.to_container(cfg.model.net).items()
                                               if k not in ("_target_", "name")})
    with pytest.raises(CheckpointError, match=r"unet.pth \(state_dict weights\) does not fit the model RHNet: \d+ missing keys"):
        apply_init_from(module, cfg)


@pytest.mark.slow
def test_make_composites_then_finetune_then_harmonize(tmp_path: Path) -> None:
    timings = {}
    start = time.perf_counter()
    photos, masks = write_photo_folder(tmp_path, 10, size=(48, 48))
    out = tmp_path / "own"
    make_composites(photos, masks, out, CompositeConfig(composites_per_object=3, test_fraction=0.2))
    timings["make_composites"] = time.perf_counter() - start

    start = time.perf_counter()
    pretrain = compose_config("train", ["data=iharmony4", f"data.root={out}", *OWN_DATA, "model.net.base_width=8",
                                        "trainer.max_epochs=1"],
                              output_dir=tmp_path / "pretrain", data_dir=tmp_path / "data")
    train(pretrain)
    initial = tmp_path / "pretrain" / "checkpoints" / "last.ckpt"
    timings["pretrain"] = time.perf_counter() - start

    start = time.perf_counter()
    finetune = compose_config("train", ["+experiment=finetune", f"data.root={out}", f"init_from={initial}",
                                        "finetune.freeze_encoder=true", *OWN_DATA, "trainer.max_epochs=2"],
                              output_dir=tmp_path / "finetune", data_dir=tmp_path / "data")
    record = train(finetune)
    timings["finetune"] = time.perf_counter() - start
    assert OmegaConf.to_container(finetune.model.net)["base_width"] == 8  # adopted from the card
    assert record["all"]["n"] == len(read_split(out, "test"))  # tested on the held-out photos
    tuned = tmp_path / "finetune" / "checkpoints" / "last.ckpt"
    before, after = _net_state(initial), _net_state(tuned)
    assert before.keys() == after.keys()
    encoder = [key for key in before if key.split(".")[0] in ("stem", "encoder")]
    assert encoder and all(torch.equal(before[key], after[key]) for key in encoder)  # frozen
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith("decoder"))

    start = time.perf_counter()
    harmonizer = Harmonizer.from_checkpoint(tuned)
    held_out = read_split(out, "test")[0]
    result = harmonizer.harmonize(out / held_out.composite, out / held_out.mask)
    timings["harmonize"] = time.perf_counter() - start
    composite, mask = load_rgb(out / held_out.composite), load_mask(out / held_out.mask)
    assert result.image.shape == composite.shape
    assert np.array_equal(result.image[~mask], composite[~mask])
    print("timings (s):", {key: round(value, 2) for key, value in timings.items()})


def _world_photos(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """Real images of a tiny synthetic world as "own photos", each with its object mask."""
    import shutil

    from raiha.world import SyntheticWorldConfig, generate_world

    world = generate_world(tmp_path / "world", SyntheticWorldConfig(image_size=48, num_train=count, num_test=4,
                                                                    num_identities=6, easy_fraction=1.0))
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for real in sorted((world / "easy" / "real_images").glob("*.jpg"))[:count]:
        shutil.copyfile(real, photos / real.name)
        shutil.copyfile(world / "easy" / "masks" / f"{real.stem}_1.png", masks / f"{real.stem}.png")
    return photos, masks


@pytest.mark.slow
def test_reference_finetuning_retrieves_from_the_own_train_photos(tmp_path: Path) -> None:
    photos, masks = _world_photos(tmp_path, 24)
    out = tmp_path / "own"
    changes = {"illuminant": {"weight": 1.0}}  # the synthetic extractor models relighting
    make_composites(photos, masks, out, CompositeConfig(composites_per_object=1, test_fraction=0.25, changes=changes))
    cfg = compose_config("train", ["+experiment=finetune", f"data.root={out}", "init_from=unused.ckpt",
                                   "retrieval@data.references.retrieval=synthetic", "data.references.retrieval.image_size=48",
                                   *OWN_DATA[1:], "data.image_size=48", "data.val_size=0"],
                         output_dir=tmp_path / "run", data_dir=tmp_path / "data")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    gallery = {record.real for record in read_split(out, "train")}
    lists = datamodule.reference_artifacts.lists
    found = 0
    for split in ("train", "test"):
        for composite, refs in lists[split].items():
            own_photo = composite.split("/")[-1].rsplit("_", 2)[0]
            assert set(refs) <= gallery  # the gallery: the user's own train photos
            assert all(Path(ref).stem != own_photo for ref in refs)  # never the composite's own photo
            found += len(refs)
    assert found > 0
    assert "reference" in datamodule.train_set[0]

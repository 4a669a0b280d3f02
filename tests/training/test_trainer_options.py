"""Issue 17 item 6: the common Trainer options are overridable without ``+``."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra
import lightning as L
import pytest
from omegaconf import OmegaConf

from raiha.utils.config import CONFIG_DIR
from tests.hydra_helpers import compose_config

# the keys whose default raiha chooses; every other listed key carries Lightning's default
RAIHA_CHOICES = {"default_root_dir", "min_epochs", "max_epochs", "devices", "precision", "log_every_n_steps",
                 "deterministic", "num_sanity_val_steps", "enable_checkpointing", "enable_progress_bar",
                 "enable_model_summary"}  # fmt: skip
# Lightning spells "use the default" as None for these, which means the value raiha writes
LIGHTNING_NONE_MEANS = {"enable_checkpointing": True, "enable_progress_bar": True}


def _trainer_keys() -> dict:
    raw = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml"), resolve=False)
    return {k: v for k, v in raw.items() if k != "_target_"}


def test_every_listed_key_is_a_trainer_argument_with_lightnings_default() -> None:
    signature = inspect.signature(L.Trainer.__init__).parameters
    keys = _trainer_keys()
    assert {"limit_train_batches", "limit_val_batches", "limit_test_batches", "fast_dev_run", "max_steps",
            "val_check_interval", "accumulate_grad_batches", "gradient_clip_val", "profiler"} <= set(keys)  # fmt: skip
    for key, value in keys.items():
        assert key in signature, f"trainer.{key} is not a Lightning Trainer argument"
        if key not in RAIHA_CHOICES:
            assert value == signature[key].default, f"trainer.{key}: {value!r} vs Lightning's {signature[key].default!r}"
    for key, meaning in LIGHTNING_NONE_MEANS.items():
        assert keys[key] == meaning and signature[key].default is None


@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp", "ddp_spawn"])
def test_limits_override_without_plus_and_reach_the_trainer(tmp_path: Path, trainer: str) -> None:
    overrides = [f"trainer={trainer}", "trainer.limit_train_batches=8", "trainer.limit_val_batches=0.5",
                 "trainer.max_steps=20", "trainer.gradient_clip_val=1.0"]  # fmt: skip
    cfg = compose_config("train", overrides, output_dir=tmp_path / "out", data_dir=tmp_path)
    assert cfg.trainer.limit_train_batches == 8 and cfg.trainer.max_steps == 20
    if trainer != "default":
        return
    built = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert built.limit_train_batches == 8 and built.limit_val_batches == 0.5
    assert built.max_steps == 20 and built.gradient_clip_val == 1.0


def test_debug_limit_still_composes(tmp_path: Path) -> None:
    cfg = compose_config("train", ["+debug=limit", "trainer.limit_train_batches=5"],
                         output_dir=tmp_path / "out", data_dir=tmp_path)  # fmt: skip
    assert cfg.trainer.limit_train_batches == 5 and cfg.trainer.max_epochs == 2

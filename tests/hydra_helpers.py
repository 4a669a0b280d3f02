"""Compose raiha's Hydra configs inside tests, with every path under a temp folder."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from raiha.utils.config import CONFIG_DIR

# A small synthetic world for tests: 48 px, 80 train / 24 test scenes (generated once per data_dir).
TINY_WORLD = [
    "data.image_size=48",
    "data.synthetic.num_train=80",
    "data.synthetic.num_test=24",
    "data.synthetic.num_identities=16",
    "data.val_size=16",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "model.net.base_width=8",
]


def compose_config(
    config_name: str, overrides: list[str], *, output_dir: Path, data_dir: Path
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` like the CLI would, outputs in ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        hydra_settings = cfg.pop("hydra")  # resolved by Hydra's launcher, not by raiha
        cfg.hydra_job_chdir = bool(hydra_settings.job.chdir)
    GlobalHydra.instance().clear()
    return cfg

"""Compose raiha's Hydra configs from Python (notebooks, tests), outputs in chosen folders."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from raiha.utils.config import CONFIG_DIR


def compose_run_config(
    config_name: str, overrides: list[str], *, output_dir: str | Path, data_dir: str | Path
) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides``, as the CLI would compose it.

    Example: ``train(compose_run_config("train", ["+experiment=raiha_synthetic"], output_dir=..., data_dir=...))``.
    The run writes into ``output_dir`` and caches data under ``data_dir``.
    """
    output_dir, data_dir = Path(output_dir), Path(data_dir)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
        hydra_settings = cfg.pop("hydra")  # resolved by Hydra's launcher, not by raiha
        cfg.hydra_job_chdir = bool(hydra_settings.job.chdir)
        cfg.command_line_overrides = list(overrides)  # raiha.eval: which model.* keys the user set
    GlobalHydra.instance().clear()
    return cfg

"""What every entry point does around a run: log the config, find the resume checkpoint, close loggers."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Send the resolved config to every logger as hyperparameters."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)


def resolve_resume_checkpoint(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``None`` (fresh run), ``"last"`` (``<output_dir>/checkpoints/last.ckpt``, which must
    exist), ``"auto"`` (that file if it exists, else a fresh run: what a requeued cluster job
    needs) or a path."""
    if ckpt_path is None:
        return None
    if ckpt_path == "auto":
        last = output_dir / "checkpoints" / "last.ckpt"
        return _readable(last) if last.is_file() else None
    if ckpt_path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last but {last} does not exist; resume with hydra.run.dir=<the run's folder> ckpt_path=last"
            )
        return _readable(last)
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} (ckpt_path) not found")
    return _readable(path)


def _readable(path: Path) -> str:
    """``path`` after a ``weights_only`` read: a truncated or corrupt checkpoint is named
    here (``CheckpointError``) instead of failing deep inside Lightning."""
    from raiha.models.checkpoint_io import read_checkpoint

    read_checkpoint(path)
    return str(path)


def finish_loggers(loggers: list[Logger]) -> None:
    """Flush every logger and close the W&B run (so the next job of a sweep gets its own)."""
    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()

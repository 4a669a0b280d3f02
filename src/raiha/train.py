"""``python -m raiha.train [+experiment=NAME] [key=value ...]``: fit, then test the best checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from raiha.evaluation.results_io import log_results_tables, report_results
from raiha.evaluation.run_protocol import protocol_title, run_test_protocol
from raiha.models.model_card import build_model_card
from raiha.training.finetune import adopt_init_card, apply_init_from
from raiha.training.preflight import stop_unless_ready
from raiha.training.run_context import finish_loggers, log_config, resolve_resume_checkpoint
from raiha.utils.config import CONFIG_DIR
from raiha.utils.ddp_relaunch import distributed_job_scope
from raiha.utils.instantiate import instantiate_callbacks, instantiate_loggers

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test as ``cfg`` says; returns the metrics record written to ``metrics.json``."""
    L.seed_everything(cfg.seed, workers=True)
    adopt_init_card(cfg)  # fine-tuning: a raiha init_from checkpoint's network and inputs
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    apply_init_from(model, cfg)  # init_from weights, finetune.freeze_encoder
    model.model_card = build_model_card(cfg)  # stored in every checkpoint (raiha.harmonize reads it)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    output_dir = Path(cfg.paths.output_dir)
    record: dict[str, Any] = {}
    try:
        log_config(loggers, cfg)
        if cfg.train:
            resume_from = resolve_resume_checkpoint(cfg.ckpt_path, output_dir)
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            if best:
                log.info("testing the best checkpoint %s", best)
            else:
                log.info("no best checkpoint (no validation or a smoke run): testing the current weights")
            record = run_test_protocol(
                trainer, model, datamodule, cfg, ckpt_path=best or None,
                extra={"checkpoint": best or None, "epochs_trained": trainer.current_epoch},
            )
            if trainer.is_global_zero:
                path = report_results(output_dir, record, subset_order=datamodule.subset_names, title=protocol_title(cfg))
                log_results_tables(loggers, record, subset_order=datamodule.subset_names)
                log.info("metrics written to %s", path)
    finally:
        finish_loggers(loggers)
    return record


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the test MSE (All) for sweepers."""
    stop_unless_ready(cfg, "raiha.train")  # one line and no run folder when data, weights or GPU are missing
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    with distributed_job_scope():  # DDP ranks > 0 rerun this job only, not the whole sweep
        record = train(cfg)
    return float(record["all"]["mse"]) if record else None


if __name__ == "__main__":
    main()

"""``python -m raiha.eval ckpt_path=FILE [data=iharmony4 data.root=...]``: test a checkpoint.

The checkpoint is read with ``torch.load(weights_only=True)``; its keys must fit the
model config (pass the same ``model`` overrides it was trained with).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from raiha.evaluation.results_io import log_results_tables, report_results
from raiha.evaluation.run_protocol import protocol_title, run_test_protocol
from raiha.models.checkpoint_io import load_module_weights
from raiha.training.preflight import stop_unless_ready
from raiha.training.run_context import finish_loggers, log_config
from raiha.utils.config import CONFIG_DIR
from raiha.utils.ddp_relaunch import distributed_job_scope
from raiha.utils.instantiate import instantiate_callbacks, instantiate_loggers

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on ``cfg.data``; returns the metrics record written to ``metrics.json``.

    With references (``data.references.enabled`` and ``model.evaluate_with_reference``) the
    test runs once per seed of ``reference_seeds``, each drawing one reference per composite
    (the RAHarmony4 protocol), and the record holds the per-seed results and their mean/std.
    """
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    load_module_weights(model, cfg.ckpt_path)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        log_config(loggers, cfg)
        record = run_test_protocol(
            trainer, model, datamodule, cfg, extra={"checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve())}
        )
        if trainer.is_global_zero:
            report_results(cfg.paths.output_dir, record, subset_order=datamodule.subset_names, title=protocol_title(cfg))
            log_results_tables(loggers, record, subset_order=datamodule.subset_names)
    finally:
        finish_loggers(loggers)
    return record


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the test MSE (All)."""
    stop_unless_ready(cfg, "raiha.eval")  # one line and no run folder when data, weights or GPU are missing
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    with distributed_job_scope():  # DDP ranks > 0 rerun this job only, not the whole sweep
        return float(evaluate(cfg)["all"]["mse"])


if __name__ == "__main__":
    main()

"""``python -m raiha.eval ckpt_path=FILE [data=iharmony4 data.root=...] [protocol=paper] [eval.resolution=model]``.

The checkpoint is read with ``torch.load(weights_only=True)``. The network is built from the
checkpoint's model card (``raiha.models.model_card``): no ``model.net.*`` flag has to be
repeated; any ``model.net.*`` flag given on the command line still wins and is reported
(``metrics.json`` -> ``model_source``). Checkpoints without a card use the model config.

``protocol`` names a scoring convention (:mod:`raiha.metrics.protocols`: paper, is2am,
pctnet, harmonizer); its background handling sets ``data.rebuild_composite``.
``eval.resolution``: ``model`` (the Lightning test at the trained size), ``original``,
``max_side=N`` or ``size=N`` (the change is carried to full size as ``raiha.Harmonizer``
does, then scored there). Every run writes ``metrics.json`` and ``per_image.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from raiha.evaluation.full_resolution_eval import run_full_resolution_protocol
from raiha.evaluation.image_scoring import parse_resolution
from raiha.evaluation.prediction_writer import PREDICTIONS_DIR, PredictionWriter
from raiha.evaluation.results_io import log_results_tables, report_results
from raiha.evaluation.run_protocol import protocol_title, run_test_protocol, uses_reference_protocol
from raiha.metrics.protocols import BACKGROUNDS, get_protocol
from raiha.models.checkpoint_io import load_state_checked, read_checkpoint
from raiha.models.model_card import MODEL_CARD_KEY, check_model_card, explicit_keys, net_from_card
from raiha.training.preflight import stop_unless_ready
from raiha.training.run_context import finish_loggers, log_config
from raiha.utils.config import CONFIG_DIR
from raiha.utils.ddp_relaunch import distributed_job_scope
from raiha.utils.instantiate import instantiate_callbacks, instantiate_loggers

log = logging.getLogger(__name__)


def apply_model_card(cfg: DictConfig, payload: dict[str, Any]) -> dict[str, Any]:
    """Set ``cfg.model.net`` (and ``data.image_size``) from the checkpoint's model card, keeping
    what the command line set explicitly; returns the ``model_source`` report."""
    card = payload.get(MODEL_CARD_KEY)
    if card is None:
        return {"model_card": False, "note": "no model card in the checkpoint: the network comes from the config"}
    card = check_model_card(card, str(cfg.ckpt_path))
    overrides = [str(item) for item in (cfg.get("command_line_overrides") or [])]
    config_net = OmegaConf.to_container(cfg.model.net, resolve=True)
    net, applied = net_from_card(dict(card["net"]), config_net, explicit_keys(overrides, "model.net."))
    with open_dict(cfg):
        cfg.model.net = OmegaConf.create(net)
        if "image_size" not in explicit_keys(overrides, "data."):
            cfg.data.image_size = int(card["image_size"])
    if applied:
        log.info("network from the model card, with command-line overrides %s", applied)
    return {"model_card": True, "overrides": applied, "image_size": int(cfg.data.image_size)}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on ``cfg.data``; returns the metrics record written to ``metrics.json``.

    With references (``data.references.enabled`` and ``model.evaluate_with_reference``) the
    test runs once per seed of ``reference_seeds``, each drawing one reference per composite
    (the RAHarmony4 protocol), and the record holds the per-seed results and their mean/std.
    """
    L.seed_everything(cfg.seed, workers=True)
    settings = cfg.get("eval") or {}
    protocol = get_protocol(str(cfg.protocol))
    resolution = parse_resolution(settings.get("resolution", "model"))
    background = str(settings.get("background") or protocol.background)
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown eval.background {background!r}; choose one of {list(BACKGROUNDS)}")
    payload = read_checkpoint(cfg.ckpt_path)
    model_source = apply_model_card(cfg, payload)
    with open_dict(cfg):
        cfg.model.protocol = protocol.name
    datamodule = hydra.utils.instantiate(cfg.data, rebuild_composite=background == "real_before")
    model = hydra.utils.instantiate(cfg.model)
    load_state_checked(model, payload.get("state_dict", payload), cfg.ckpt_path)
    model.test_background = background
    save_dir = Path(cfg.paths.output_dir) / PREDICTIONS_DIR if settings.get("save_predictions") else None
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    if save_dir is not None and resolution.kind == "model":
        callbacks.append(PredictionWriter(save_dir))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    extra = {
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()), "resolution": str(resolution),
        "background": background, "model_source": model_source,
        "predictions": str(save_dir) if save_dir is not None else None,
    }  # fmt: skip
    try:
        log_config(loggers, cfg)
        if resolution.kind == "model":
            record = run_test_protocol(trainer, model, datamodule, cfg, extra=extra)
        else:
            record = run_full_resolution_protocol(
                model, datamodule, protocol=protocol, resolution=resolution, background=background,
                with_references=uses_reference_protocol(cfg), reference_seeds=cfg.get("reference_seeds"),
                method=str(settings.get("full_resolution_method", "affine")),
                num_workers=int(settings.get("num_workers", 0)), save_dir=save_dir,
                fg_ratio_edges=settings.get("fg_ratio_edges"),
                extra={**extra, "experiment": cfg.get("experiment_name"), "seed": cfg.get("seed")},
            )  # fmt: skip
        if trainer.is_global_zero:
            title = f"{protocol_title(cfg)}, {resolution}"
            report_results(cfg.paths.output_dir, record, subset_order=datamodule.subset_names, title=title)
            log_results_tables(loggers, record, subset_order=datamodule.subset_names)
    finally:
        finish_loggers(loggers)
    return record


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the test MSE (All)."""
    stop_unless_ready(cfg, "raiha.eval")  # one line and no run folder when data, weights or GPU are missing
    from hydra.core.hydra_config import HydraConfig

    with open_dict(cfg):
        cfg.command_line_overrides = list(HydraConfig.get().overrides.task)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    with distributed_job_scope():  # DDP ranks > 0 rerun this job only, not the whole sweep
        return float(evaluate(cfg)["all"]["mse"])


if __name__ == "__main__":
    main()

"""Fine-tuning: start a run from ``init_from=FILE`` (a raiha checkpoint or the authors' generator).

Config (``conf/train.yaml``, set by ``conf/experiment/finetune.yaml``)::

    init_from: null | FILE
    finetune:
      adopt_card: true        # a raiha checkpoint's card defines the network and its inputs
      freeze_encoder: false   # the network's stem and encoder keep their weights

``adopt_card`` (before anything is built): when ``init_from`` is a raiha checkpoint with a
model card, ``model.net``, ``data.image_size``, the reference setting
(``data.references.enabled`` / ``semantic`` / ``retrieval``) and
``model.reference_probability`` / ``evaluate_with_reference`` are taken from it, so the
weights fit and a reference model keeps retrieving (now over the new train photos).
``apply_init_from`` (after the model is built): loads the weights (every key must fit)
and freezes the encoder if asked. A resumed run (``ckpt_path=...``) then loads its own
checkpoint over them as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from raiha.models.init_weights import load_initial_weights, read_initial_weights

log = logging.getLogger(__name__)

ENCODER_MODULES = ("stem", "encoder")


def _finetune_settings(cfg: DictConfig) -> dict[str, Any]:
    settings = cfg.get("finetune") or {}
    return {"adopt_card": bool(settings.get("adopt_card", True)), "freeze_encoder": bool(settings.get("freeze_encoder", False))}


def adopt_init_card(cfg: DictConfig) -> DictConfig:
    """Take the network and its inputs from ``init_from``'s model card (in place; returns ``cfg``)."""
    if not cfg.get("init_from") or not _finetune_settings(cfg)["adopt_card"]:
        return cfg
    weights = read_initial_weights(cfg.init_from)
    card = weights.card
    if not card or not isinstance(card.get("net"), dict):
        log.info("init_from %s: %s weights without a model card; model.net from the config", cfg.init_from, weights.kind)
        return cfg
    trained = card.get("config") or {}
    trained_references = ((trained.get("data") or {}).get("references") or {})
    trained_model = trained.get("model") or {}
    with open_dict(cfg):
        cfg.model.net = OmegaConf.create(card["net"])
        cfg.data.image_size = int(card["image_size"])
        if cfg.data.get("references") is not None and trained_references:
            for key in ("enabled", "semantic"):
                cfg.data.references[key] = bool(trained_references.get(key, False))
            if trained_references.get("enabled"):
                cfg.data.references.retrieval = OmegaConf.create(card.get("retrieval") or {})
        for key in ("reference_probability", "evaluate_with_reference"):
            if key in trained_model:
                cfg.model[key] = trained_model[key]
    log.info(
        "init_from %s: network, %d px and reference setting (%s) from its model card",
        cfg.init_from, cfg.data.image_size, "on" if cfg.data.get("references", {}).get("enabled") else "off",
    )
    return cfg


def freeze_encoder(net: nn.Module) -> int:
    """Stop gradients to the network's ``stem`` and ``encoder``; returns the number of frozen tensors."""
    missing = [name for name in ENCODER_MODULES if not isinstance(getattr(net, name, None), nn.Module)]
    if missing:
        raise ValueError(f"finetune.freeze_encoder: {type(net).__name__} has no {missing} module to freeze")
    frozen = 0
    for name in ENCODER_MODULES:
        for parameter in getattr(net, name).parameters():
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def apply_init_from(module: nn.Module, cfg: DictConfig) -> None:
    """Load ``init_from`` into ``module.net`` and freeze its encoder if ``finetune.freeze_encoder``."""
    settings = _finetune_settings(cfg)
    if cfg.get("init_from"):
        weights = load_initial_weights(module.net, cfg.init_from)
        log.info("initial weights: %s (%s, %d tensors)", cfg.init_from, weights.kind, len(weights.state))
    if settings["freeze_encoder"]:
        count = freeze_encoder(module.net)
        log.info("finetune.freeze_encoder: %d encoder tensors frozen", count)

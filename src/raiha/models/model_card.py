"""The model card a raiha checkpoint carries: enough to harmonize with nothing else.

``raiha.train`` stores it under ``checkpoint["raiha_model_card"]`` (plain dicts, lists,
strings and numbers, so ``torch.load(weights_only=True)`` reads it)::

    {"version": 1,
     "net": {"_target_": "raiha.models.registry.create_harmonizer", "name": "unet", ...},
     "image_size": 256,            # the size the network was trained at
     "semantic": true,             # SGF reads a semantic grid of the composite / reference
     "extractor": "dvt",           # which extractor made those grids (and retrieves)
     "retrieval": {...},           # RetrievalSettings fields used to build the train lists
     "experiment": "raiha", "data_source": "iharmony4",
     "config": {...}}              # the whole resolved training config, for the record
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

MODEL_CARD_KEY = "raiha_model_card"
MODEL_CARD_VERSION = 1
NET_TARGET = "raiha.models.registry.create_harmonizer"


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return node


def build_model_card(cfg: DictConfig) -> dict[str, Any]:
    """The card of a training run's config (called by ``raiha.train``)."""
    # read as raiha.data.references.settings.ReferenceSettings reads it (this layer cannot
    # import it): retrieval.image_size None is the harmonizer's size
    references = cfg.data.get("references") or {}
    enabled = bool(references.get("enabled", False))
    retrieval = _plain(references.get("retrieval")) if enabled else None
    retrieval = dict(retrieval or {})
    semantic = enabled and bool(references.get("semantic", False))
    # the extractor and rule are kept whenever references were used, SGF or not
    if enabled and retrieval.get("image_size") is None:
        retrieval["image_size"] = int(cfg.data.image_size)
    try:
        config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - the record is best effort; the fields above are not
        config = None
    return {
        "version": MODEL_CARD_VERSION,
        "net": _plain(cfg.model.net),
        "image_size": int(cfg.data.image_size),
        "semantic": semantic,
        "extractor": retrieval.get("extractor") if enabled else None,
        "retrieval": retrieval,
        "experiment": cfg.get("experiment_name"),
        "data_source": cfg.data.get("source"),
        "config": config,
    }


def explicit_keys(overrides: Sequence[str], prefix: str) -> list[str]:
    """Dotted keys below ``prefix`` set by command-line ``overrides`` (``model.net.base_width=32``,
    ``++model.net.x=1``): ``["base_width", "x"]`` for prefix ``"model.net."``."""
    keys = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith(prefix) and "=" in override:
            keys.append(key[len(prefix):])
    return keys


def _get_dotted(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def net_from_card(
    card_net: dict[str, Any], config_net: dict[str, Any], explicit: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The network config to build: the card's, with every ``explicit`` (dotted) key taken from
    ``config_net`` (what the user typed wins). Returns ``(net, {key: value} of those overrides)``."""
    net = copy.deepcopy(card_net)
    applied = {}
    for key in explicit:
        value = _get_dotted(config_net, key)
        _set_dotted(net, key, value)
        applied[key] = value
    return net, applied


def check_model_card(card: Any, source: str) -> dict[str, Any]:
    """Validate a card read from ``source``; raise ``ValueError`` naming what is wrong."""
    if not isinstance(card, dict):
        raise ValueError(
            f"{source} has no raiha model card (key '{MODEL_CARD_KEY}'): it was not written by "
            "raiha.train; pass net=..., image_size=... to Harmonizer.from_checkpoint"
        )
    if card.get("version") != MODEL_CARD_VERSION:
        raise ValueError(f"{source}: model card version {card.get('version')!r}, expected {MODEL_CARD_VERSION}")
    net = card.get("net") or {}
    if net.get("_target_", NET_TARGET) != NET_TARGET:
        # never instantiate an arbitrary callable named by a downloaded file
        raise ValueError(f"{source}: the card's network target {net.get('_target_')!r} is not {NET_TARGET}")
    for field in ("image_size", "semantic"):
        if field not in card:
            raise ValueError(f"{source}: the model card lacks '{field}'")
    return card

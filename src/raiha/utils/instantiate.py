"""Build callbacks and loggers from their config groups (one entry per key)."""

from __future__ import annotations

import logging

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _instantiate_group(group: DictConfig | None, kind: str) -> list:
    objects = []
    if not group:
        return objects
    if not isinstance(group, DictConfig):
        raise TypeError(f"the {kind} config must be a mapping of name -> object config, got {type(group).__name__}")
    for name, entry in group.items():
        if isinstance(entry, DictConfig) and "_target_" in entry:
            log.info("instantiating %s %s <%s>", kind, name, entry._target_)
            objects.append(hydra.utils.instantiate(entry))
    return objects


def instantiate_callbacks(callbacks: DictConfig | None) -> list[Callback]:
    """Every ``callbacks.<name>`` with a ``_target_``."""
    return _instantiate_group(callbacks, "callback")


def instantiate_loggers(loggers: DictConfig | None) -> list[Logger]:
    """Every ``logger.<name>`` with a ``_target_``."""
    return _instantiate_group(loggers, "logger")

"""Initial weights for fine-tuning (``init_from=FILE``): a raiha checkpoint or the authors' generator.

Three kinds of file are recognised (all read with ``weights_only=True``):

- ``raiha``: a checkpoint written by ``raiha.train`` (a ``state_dict`` with ``net.`` keys,
  usually a model card); only the network's weights are taken;
- ``authors``: the authors' released generator (``model_layer0.weight`` ...), renamed to
  ``rhnet`` keys by :mod:`raiha.models.authors_checkpoint`;
- ``state_dict``: a plain state dict of the network itself.

Every key of the network must be in the file and every key of the file must be in the
network, with the same shapes; otherwise ``CheckpointError`` lists the missing and
unexpected keys (and, for a raiha checkpoint, the network its card says it was trained with).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from raiha.models.authors_checkpoint import (
    _read_payload,
    convert_authors_state_dict,
    unwrap_authors_checkpoint,
)
from raiha.models.checkpoint_io import CheckpointError, load_state_checked
from raiha.models.model_card import MODEL_CARD_KEY

AUTHORS_MARK = "model_layer0.weight"
NET_PREFIX = "net."


@dataclass(frozen=True)
class InitialWeights:
    """The network weights found in an ``init_from`` file and what kind of file it was."""

    kind: str  # raiha | authors | state_dict
    state: dict[str, Tensor]
    card: dict[str, Any] | None  # the raiha model card, when there is one


def read_initial_weights(path: str | Path) -> InitialWeights:
    """Read ``path`` and extract the network's state dict (see the module docstring)."""
    path = Path(path).expanduser()
    payload = _read_payload(path)
    card = payload.get(MODEL_CARD_KEY) if isinstance(payload.get(MODEL_CARD_KEY), Mapping) else None
    lightning_state = payload.get("state_dict")
    if isinstance(lightning_state, Mapping) and any(str(k).startswith(NET_PREFIX) for k in lightning_state):
        state = {k.removeprefix(NET_PREFIX): v for k, v in lightning_state.items() if k.startswith(NET_PREFIX)}
        return InitialWeights("raiha", state, dict(card) if card else None)
    state = unwrap_authors_checkpoint(payload, f"init_from file {path}")
    if AUTHORS_MARK in state:
        return InitialWeights("authors", convert_authors_state_dict(state), None)
    return InitialWeights("state_dict", dict(state), None)


def load_initial_weights(net: nn.Module, path: str | Path) -> InitialWeights:
    """Fill ``net`` with the weights of ``path``; ``CheckpointError`` names any key that does not fit."""
    weights = read_initial_weights(path)
    try:
        load_state_checked(net, weights.state, f"init_from file {path} ({weights.kind} weights)")
    except CheckpointError as error:
        hint = ""
        if weights.card and isinstance(weights.card.get("net"), Mapping):
            hint = f" Its model card says it was trained with model.net={dict(weights.card['net'])}."
        raise CheckpointError(f"{error}{hint}") from error
    return weights

"""Load weights safely (``weights_only=True``) with errors that say what is wrong."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raiha.io.atomic_io import atomic_write
from raiha.io.load_errors import is_unsafe_pickle_error, unsafe_pickle_message


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a clear error for missing or corrupt files."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass ckpt_path=/path/to/file.ckpt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if is_unsafe_pickle_error(error):
            raise CheckpointError(unsafe_pickle_message(path, error)) from error
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
            "it is truncated, corrupt or not a torch checkpoint: re-copy or re-download it"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); "
            "it is truncated, corrupt or not a torch checkpoint: re-copy or re-download it"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict of tensors")
    return payload


def _plain_payload(node: Any) -> Any:
    """``node`` with only tensors, containers, strings, numbers and None kept (others dropped)."""
    if isinstance(node, torch.Tensor | str | int | float | bool) or node is None:
        return node
    if isinstance(node, dict):
        kept = {key: _plain_payload(value) for key, value in node.items() if isinstance(key, str | int)}
        return {key: value for key, value in kept.items() if value is not _DROPPED}
    if isinstance(node, list | tuple):
        items = [_plain_payload(value) for value in node]
        return type(node)(value for value in items if value is not _DROPPED)
    return _DROPPED


_DROPPED = object()


def convert_trusted_checkpoint(source: str | Path, destination: str | Path) -> Path:
    """Rewrite a TRUSTED checkpoint that holds pickled Python objects as plain tensors and
    containers, so ``weights_only=True`` reads it; other objects are dropped.

    Only for files from a source you trust: reading ``source`` runs its pickled code.
    """
    payload = torch.load(Path(source).expanduser(), map_location="cpu", weights_only=False)
    plain = _plain_payload(payload)
    if plain is _DROPPED:
        raise CheckpointError(f"checkpoint {source} holds a {type(payload).__name__}, nothing to convert")
    return atomic_write(Path(destination).expanduser(), lambda tmp: torch.save(plain, tmp))


def load_module_weights(module: nn.Module, path: str | Path, *, prefix: str = "") -> dict[str, Any]:
    """Load a Lightning checkpoint (key ``state_dict``) or a plain state dict into ``module``.

    Args:
        module: the module to fill (all keys must match, shapes too).
        path: the checkpoint file.
        prefix: a key prefix to strip (e.g. ``"net."``), if present.
    Returns: the whole checkpoint payload (for its metadata).
    """
    payload = read_checkpoint(path)
    state = payload.get("state_dict", payload)
    if prefix:
        state = {key.removeprefix(prefix): value for key, value in state.items()}
    load_state_checked(module, state, path)
    return payload


def load_state_checked(module: nn.Module, state: dict[str, Any], source: str | Path) -> None:
    """``module.load_state_dict(state)`` after listing missing, unexpected and mis-shaped keys."""
    path = source
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shapes = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state))
        if hasattr(state[key], "shape") and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shapes:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model {type(module).__name__}: "
            f"{len(missing)} missing keys {missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]}, "
            f"{len(wrong_shapes)} shape mismatches {wrong_shapes[:4]}. Use the model config it was trained with."
        )
    module.load_state_dict(state)

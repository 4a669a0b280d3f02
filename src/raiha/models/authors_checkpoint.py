"""The authors' generator checkpoints <-> ``rhnet``: key names, loading, export.

The authors name their layers ``model_layer0`` ... ``model_layer13``, ``model_layer71``,
``model_layer72``, ``model_layer{9..13}norm``, ``model_layer{11..13}att`` (DRConv),
``model_out`` and ``DVTATT`` (the fusion). ``AUTHORS_TO_RAIHA`` maps each to the
module names of ``raiha.models.rhnet.RHNet``. Two keys need care:

- ``DVTATT.K_conv`` is the one projection shared by queries and keys in the trained
  variant: it fills both ``fusion.key_projection`` and ``fusion.query_projection``
  (a ``DVTATT.Q_conv`` key, present in their unshared variant, means two projections).
- ``model_layer{11..13}att.conv_guide`` is never used in the authors' forward pass:
  it is dropped on import and written as zeros on export, so their strict loader
  accepts a raiha-trained model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from raiha.io.atomic_io import atomic_write
from raiha.models.checkpoint_io import CheckpointError, read_checkpoint
from raiha.models.rhnet import RHNet

WRAPPER_KEYS = ("state_dict", "netG", "generator", "model")
RAIN_PARAMETERS = ("foreground_gamma", "foreground_beta", "background_gamma", "background_beta")
SHARED_PROJECTION_KEY = "DVTATT.K_conv"
UNSHARED_QUERY_KEY = "DVTATT.Q_conv"
UNUSED_GUIDE_MARK = ".conv_guide."


def _authors_name_table() -> dict[str, str]:
    """Authors' state-dict key -> RHNet key, for every key either layout can have."""
    table = {"model_layer0.weight": "stem.conv.weight"}
    for layer in range(1, 7):
        table[f"model_layer{layer}.1.weight"] = f"encoder.{layer - 1}.conv.weight"
    table["model_layer71.1.weight"] = "bottleneck.weight"
    for stage, layer in enumerate((72, 8, 9, 10, 11, 12, 13)):
        table[f"model_layer{layer}.1.weight"] = f"decoder.{stage}.conv.weight"
    for layer in range(9, 14):
        for name in RAIN_PARAMETERS:
            table[f"model_layer{layer}norm.{name}"] = f"decoder.{layer - 7}.norm.{name}"
    for layer in range(11, 14):
        for name in ("weight", "bias"):
            region_conv = f"decoder.{layer - 7}.region_conv"
            table[f"model_layer{layer}att.conv_kernel.1.{name}"] = (
                f"{region_conv}.context_projection.{name}"
            )
            table[f"model_layer{layer}att.conv_kernel.3.{name}"] = (
                f"{region_conv}.kernel_projection.{name}"
            )
    for name in ("weight", "bias"):
        table[f"model_out.1.{name}"] = f"head.{name}"
        table[f"{SHARED_PROJECTION_KEY}.{name}"] = f"fusion.key_projection.{name}"
        table[f"{UNSHARED_QUERY_KEY}.{name}"] = f"fusion.query_projection.{name}"
    table["DVTATT.fuse.weight"] = "fusion.fuse.weight"
    return table


AUTHORS_TO_RAIHA: dict[str, str] = _authors_name_table()
RAIHA_TO_AUTHORS: dict[str, str] = {raiha: authors for authors, raiha in AUTHORS_TO_RAIHA.items()}


def unwrap_authors_checkpoint(payload: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """The generator's state dict inside a checkpoint payload.

    Accepts a plain state dict or one under ``state_dict`` / ``netG`` / ``generator`` /
    ``model``, and strips a DataParallel ``module.`` prefix.
    """
    state: Any = payload
    while isinstance(state, Mapping):
        wrapped = [key for key in WRAPPER_KEYS if isinstance(state.get(key), Mapping)]
        if not wrapped:
            break
        state = state[wrapped[0]]
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(v, Tensor) for v in state.values())
    ):
        found = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(
            f"{source} holds no generator state dict (found {found}); pass the authors' generator "
            f"weights (a dict of tensors, possibly under one of {WRAPPER_KEYS})"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def infer_rhnet_config(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """RHNet keyword arguments that fit an authors' state dict (width, input, attention, DRConv)."""
    if "model_layer0.weight" not in state_dict:
        raise CheckpointError(
            f"not an authors' generator: no 'model_layer0.weight' among {sorted(state_dict)[:8]}; "
            "pass the generator (netG) weights of their RHNet"
        )
    stem = state_dict["model_layer0.weight"]  # [w, in, 3, 3]
    base_width = int(stem.shape[0])
    config: dict[str, Any] = {
        "base_width": base_width,
        "input_mask_channel": int(stem.shape[1]) == 4,
    }
    projection = state_dict.get(f"{SHARED_PROJECTION_KEY}.weight")  # [16w, 16w + S, 1, 1]
    if projection is None:
        config["attention"] = "none"
    else:
        semantic_channels = int(projection.shape[1]) - 16 * base_width
        config["attention"] = "sgf" if semantic_channels > 0 else "plain"
        config["semantic_channels"] = max(semantic_channels, 0)
        config["shared_projection"] = f"{UNSHARED_QUERY_KEY}.weight" not in state_dict
    config["region_conv"] = any(key.startswith("model_layer11att.") for key in state_dict)
    return config


def convert_authors_state_dict(
    state_dict: Mapping[str, Tensor], base_width: int | None = None
) -> dict[str, Tensor]:
    """Rename the authors' keys to RHNet's; ``conv_guide`` keys (unused by them) are dropped.

    Args:
        state_dict: the authors' generator weights (``module.`` prefixes are stripped).
        base_width: if given, checked against the width the weights imply.
    """
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    if base_width is not None:
        inferred = infer_rhnet_config(state_dict)["base_width"]
        if inferred != base_width:
            raise CheckpointError(
                f"base_width={base_width} given but the weights are for base_width={inferred}"
            )
    unknown = sorted(
        k for k in state_dict if k not in AUTHORS_TO_RAIHA and UNUSED_GUIDE_MARK not in k
    )
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} keys are not part of the authors' RHNet: {unknown[:8]}; "
            "is this the generator of their released code?"
        )
    shared = f"{UNSHARED_QUERY_KEY}.weight" not in state_dict
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if UNUSED_GUIDE_MARK in key:
            continue
        converted[AUTHORS_TO_RAIHA[key]] = value
        if shared and key.startswith(f"{SHARED_PROJECTION_KEY}."):
            converted[AUTHORS_TO_RAIHA[key].replace("key_projection", "query_projection")] = value
    return converted


def to_authors_state_dict(model: RHNet) -> dict[str, Tensor]:
    """An RHNet's weights under the authors' key names (their strict ``load_state_dict`` accepts it)."""
    shared = (
        model.fusion is not None and model.fusion.query_projection is model.fusion.key_projection
    )
    exported: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if shared and key.startswith("fusion.query_projection."):
            continue  # the same tensor is exported once, as DVTATT.K_conv
        exported[RAIHA_TO_AUTHORS[key]] = value
    for layer, stage in ((11, 4), (12, 5), (13, 6)):
        region_conv = model.decoder[stage].region_conv
        if region_conv is None:
            continue
        like = region_conv.context_projection.weight
        exported[f"model_layer{layer}att.conv_guide.weight"] = like.new_zeros(
            2, region_conv.in_channels, 1, 1
        )
        exported[f"model_layer{layer}att.conv_guide.bias"] = like.new_zeros(2)
    return exported


def save_authors_generator(model: RHNet, path: str | Path) -> Path:
    """Write ``to_authors_state_dict(model)`` to ``path`` atomically (a plain state dict file)."""
    state = {
        key: value.detach().cpu().clone() for key, value in to_authors_state_dict(model).items()
    }
    return atomic_write(path, lambda tmp_path: torch.save(state, tmp_path))


def load_authors_generator(
    path_or_state_dict: str | Path | Mapping[str, Any], **rhnet_kwargs: Any
) -> RHNet:
    """Build an RHNet that fits the authors' weights and load them.

    Args:
        path_or_state_dict: a checkpoint file (read with ``weights_only=True``) or a payload.
        rhnet_kwargs: RHNet arguments; those not given (width, input channels, attention,
            semantic channels, shared projection, DRConv) are inferred from the weights.
    Raises:
        CheckpointError: unreadable file, not a generator, missing/unexpected keys, wrong shapes.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "the given state dict"
        payload: Mapping[str, Any] = path_or_state_dict
    else:
        source = f"checkpoint {Path(path_or_state_dict)}"
        payload = _read_payload(Path(path_or_state_dict))
    state_dict = unwrap_authors_checkpoint(payload, source)
    try:
        config = {**infer_rhnet_config(state_dict), **rhnet_kwargs}
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from error
    model = RHNet(**config)
    expected = {k: v for k, v in to_authors_state_dict(model).items() if UNUSED_GUIDE_MARK not in k}
    given = {k: v for k, v in state_dict.items() if UNUSED_GUIDE_MARK not in k}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong_shapes = [
        f"{key}: checkpoint {tuple(given[key].shape)} vs rhnet {AUTHORS_TO_RAIHA[key]} {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(given))
        if given[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shapes:
        raise CheckpointError(
            f"{source} does not fit rhnet({_describe(config)}): "
            f"{len(missing)} missing keys {missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]}, "
            f"{len(wrong_shapes)} shape mismatches {wrong_shapes[:4]}. "
            "Leave the architecture arguments out to infer them from the weights, or pass the ones it was trained with."
        )
    model.load_state_dict(convert_authors_state_dict(given), strict=True)
    return model


def _read_payload(path: Path) -> dict[str, Any]:
    """``read_checkpoint``, plus unpickler failures it lets through (e.g. IndexError on junk bytes)."""
    try:
        return read_checkpoint(path)
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means an unreadable file
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {str(error)[:200]}); "
            "it is not a torch checkpoint: pass the authors' generator file (e.g. latest_net_G.pth)"
        ) from error


def _describe(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in sorted(config.items()))

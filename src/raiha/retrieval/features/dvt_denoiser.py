"""The DVT denoiser (Yang et al. 2024, "Denoising Vision Transformers").

One standard timm ViT ``Block`` over the raw ViT patch features, after adding a
learned positional embedding ``pos_embed`` of shape ``[1, 37*37, C]`` that is resampled
bicubically (timm ``resample_abs_pos_embed``) to the actual grid. The output is not
normalised. Grids are channels-last ``[B, h, w, C]`` (see :mod:`raiha.retrieval.features.grids`).

The published checkpoints are ``.pth`` dicts whose key ``denoiser`` holds
``pos_embed`` and ``denoiser.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from raiha.io.load_errors import is_unsafe_pickle_error, unsafe_pickle_message

CHECKPOINT_ROOT_KEY = "denoiser"
PUBLISHED_POS_GRID = (37, 37)


class DvtDenoiser(nn.Module):
    """A single transformer block that removes position-dependent artefacts from ViT features.

    Args:
        feature_dim: C, the ViT width (multiple of 64: heads = C / 64).
        pos_grid: the grid of the learned positional embedding (37 x 37 when published).
    """

    def __init__(self, *, feature_dim: int, pos_grid: tuple[int, int] = PUBLISHED_POS_GRID) -> None:
        super().__init__()
        if feature_dim % 64 != 0:
            raise ValueError(
                f"DVT denoiser width {feature_dim} is not a multiple of 64 (heads = C / 64)"
            )
        self.feature_dim = feature_dim
        self.pos_grid = pos_grid
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid[0] * pos_grid[1], feature_dim))
        self.denoiser = Block(
            dim=feature_dim,
            num_heads=feature_dim // 64,
            mlp_ratio=4.0,
            qkv_bias=True,
            act_layer=nn.GELU,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Random init (trunc-normal 0.02 positional embedding), used when no checkpoint is given."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, features: Tensor) -> Tensor:
        """Denoise a grid of raw ViT patch features.

        Args:
            features: ``[B, h, w, C]`` (any float dtype; computed in the module's dtype).

        Returns:
            ``[B, h, w, C]`` denoised features.
        """
        if features.ndim != 4 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"DVT denoiser expects [B, h, w, {self.feature_dim}] features, got {tuple(features.shape)}"
            )
        batch, height, width, channels = features.shape
        tokens = features.to(self.pos_embed.dtype).reshape(
            batch, height * width, channels
        )  # [B, h*w, C]
        pos_embed = resample_abs_pos_embed(
            self.pos_embed,
            new_size=[height, width],
            old_size=list(self.pos_grid),
            num_prefix_tokens=0,
        )  # [1, h*w, C]
        tokens = self.denoiser(tokens + pos_embed)  # [B, h*w, C]
        return tokens.reshape(batch, height, width, channels)  # [B, h, w, C]

    def load_published_state(self, state: dict[str, Tensor], source: str = "<state dict>") -> None:
        """Load the inner dict of a published checkpoint, checking keys and shapes first.

        Args:
            state: the dict stored under the checkpoint's ``denoiser`` key.
            source: the file it came from, named in errors.
        """
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"DVT denoiser checkpoint {source} has wrong keys: missing {missing}, unexpected "
                f"{unexpected}; expected a published DVT '.pth' whose '{CHECKPOINT_ROOT_KEY}' dict holds "
                f"pos_embed and denoiser.* block weights"
            )
        for key, value in expected.items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise ValueError(
                    f"DVT denoiser checkpoint {source}: '{key}' has shape {tuple(state[key].shape)} but "
                    f"this denoiser (width {self.feature_dim}) needs {tuple(value.shape)}; use the "
                    f"checkpoint made for this backbone"
                )
        self.load_state_dict(state)


def load_dvt_denoiser(path: str | Path, *, expected_feature_dim: int | None = None) -> DvtDenoiser:
    """Build a :class:`DvtDenoiser` from a published DVT ``.pth`` checkpoint.

    Args:
        path: the checkpoint file.
        expected_feature_dim: when given, the backbone width the checkpoint must match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"DVT denoiser checkpoint {path} does not exist; download the DVT denoiser for your "
            f"backbone (named '<timm model name>.pth') and point denoiser_checkpoint/denoiser_dir at it"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types (pickle, zip, EOF) for a bad file
        if is_unsafe_pickle_error(error):
            raise ValueError(unsafe_pickle_message(path, error, "DVT denoiser checkpoint")) from error
        raise ValueError(
            f"DVT denoiser checkpoint {path} cannot be read by torch.load ({type(error).__name__}: "
            f"{error}); the file is corrupt or not a torch checkpoint: download it again"
        ) from error
    if not isinstance(checkpoint, dict) or CHECKPOINT_ROOT_KEY not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"DVT denoiser checkpoint {path} has no '{CHECKPOINT_ROOT_KEY}' key (found {found}); "
            f"expected the published DVT format"
        )
    state = checkpoint[CHECKPOINT_ROOT_KEY]
    pos_embed = state.get("pos_embed") if isinstance(state, dict) else None
    if pos_embed is None or pos_embed.ndim != 3:
        shape = None if pos_embed is None else tuple(pos_embed.shape)
        raise ValueError(
            f"DVT denoiser checkpoint {path}: 'pos_embed' is missing or not [1, N, C] (got {shape})"
        )
    feature_dim = int(pos_embed.shape[-1])
    side = math.isqrt(int(pos_embed.shape[1]))
    if side * side != pos_embed.shape[1]:
        raise ValueError(
            f"DVT denoiser checkpoint {path}: pos_embed has {pos_embed.shape[1]} tokens, not a square grid"
        )
    if expected_feature_dim is not None and feature_dim != expected_feature_dim:
        raise ValueError(
            f"DVT denoiser checkpoint {path} is for width {feature_dim} but the backbone has width "
            f"{expected_feature_dim}; use the checkpoint made for this backbone"
        )
    denoiser = DvtDenoiser(feature_dim=feature_dim, pos_grid=(side, side))
    denoiser.load_published_state(state, source=str(path))
    return denoiser.eval()

"""Masked fusion attention at the 1/8 decoder feature (paper Eq. 6-10).

Foreground cells are the queries, every non-foreground cell is a key (the
background, and the reference when it is concatenated to the right of the
composite). Queries and keys are projected by 1x1 convolutions, L2-normalised per
cell and compared with a temperature-scaled cosine (the authors' formulation).
Values are the decoder features; the attended features are fused with the
foreground features by a 1x1 convolution and only foreground cells change.
With ``value_colour`` the values also carry each cell's mean log colour (from the
image the network sees, reference included), and the fusion sees the attended colour
next to the query cell's own: the colour of the matching reference object reaches the
foreground without having to survive the encoder.

With ``semantic_channels == 0`` this is the plain attention of Eq. 6/7; with a
semantic grid concatenated on channels before the projections it is the
Semantic-Guided Fusion of Eq. 8-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INVALID_SCORE = 1e6


@dataclass
class AttentionResult:
    """Output of one fusion step.

    Attributes:
        features: ``[B, C, h, w]`` fused features (background cells unchanged).
        weights: ``[B, h*w, h*w]`` attention of each query cell over key cells; rows
            of non-foreground cells and columns of foreground cells are zero. None when
            the fused kernel ran (training), which does not materialise them.
        foreground_cells: ``[B, 1, h, w]`` the cells that acted as queries.
    """

    features: Tensor
    weights: Tensor | None
    foreground_cells: Tensor


def foreground_cells_from_mask(mask: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Mark a grid cell as foreground if any pixel in it is (max-pool, then > 0).

    Args:
        mask: ``[B, 1, H, W]`` with H, W multiples of the grid size.
        grid_size: ``(h, w)``.
    Returns:
        ``[B, 1, h, w]`` float in {0, 1}.
    """
    height, width = mask.shape[-2:]
    if height % grid_size[0] or width % grid_size[1]:
        raise ValueError(f"mask size {height}x{width} is not a multiple of the grid {grid_size}")
    kernel = (height // grid_size[0], width // grid_size[1])
    return (F.max_pool2d(mask, kernel_size=kernel, stride=kernel) > 0).to(mask.dtype)


SEMANTIC_INITS = ("random", "cosine")
FUSE_INITS = ("random", "identity")
FUSE_ATTENDED_SCALE = 0.1  # fuse_init="identity": the attended half starts small, not zero (live gradient)
COLOUR_CHANNELS = 3
LOG_COLOUR_OFFSET = 0.01  # log(x + offset) of colours in [0, 1]: finite on black pixels


def cell_log_colour(image: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Mean colour of each grid cell, in log space.

    Args:
        image: ``[B, 3, H, W]`` in [-1, 1], H and W multiples of the grid size.
        grid_size: ``(h, w)``.
    Returns:
        ``[B, 3, h, w]`` ``log(mean colour in [0, 1] + LOG_COLOUR_OFFSET)``.
    """
    height, width = image.shape[-2:]
    if height % grid_size[0] or width % grid_size[1]:
        raise ValueError(f"image size {height}x{width} is not a multiple of the grid {grid_size}")
    kernel = (height // grid_size[0], width // grid_size[1])
    mean_colour = F.avg_pool2d((image.float() + 1) / 2, kernel_size=kernel, stride=kernel)  # [B, 3, h, w]
    return torch.log(mean_colour.clamp_min(0) + LOG_COLOUR_OFFSET).to(image.dtype)


class MaskedFusionAttention(nn.Module):
    """Foreground-queries-background attention with optional semantic guidance."""

    def __init__(
        self,
        *,
        channels: int,
        semantic_channels: int = 0,
        projection_channels: int | None = None,
        shared_projection: bool = False,
        temperature: float = 20.0,
        fused: bool = True,
        semantic_init: str = "random",
        fuse_init: str = "random",
        value_colour: bool = False,
    ) -> None:
        """Args:
        channels: channels of the decoder feature (also the value channels).
        semantic_channels: channels of the semantic grid concatenated before the
            projections (0 = plain attention, Eq. 6/7; > 0 = SGF, Eq. 8).
        projection_channels: query/key channels (default: ``channels``).
        shared_projection: one projection for queries and keys (the authors' variant).
        temperature: multiplies the cosine scores before the softmax.
        fused: in training mode use ``scaled_dot_product_attention`` (no weights kept);
            eval mode always materialises the weights for the attention maps.
        semantic_init: ``random`` (PyTorch's default init) or ``cosine``: the query and key
            projections start as one shared random map of the semantic grid and ignore the
            decoder features, so the first scores are the semantic cosine (JL-preserved)
            and attention starts on the semantically matching cells; training then adds
            the decoder features.
        fuse_init: ``random`` or ``identity`` (the fusion starts as a near no-op on the
            foreground features: the attended half scaled by ``FUSE_ATTENDED_SCALE``).
        value_colour: the values also carry each cell's mean log colour; ``forward`` then
            needs ``image=``.
        """
        super().__init__()
        projection_channels = projection_channels or channels
        self.semantic_channels = semantic_channels
        self.temperature = temperature
        self.fused = fused
        self.query_projection = nn.Conv2d(channels + semantic_channels, projection_channels, 1)
        self.key_projection = (
            self.query_projection
            if shared_projection
            else nn.Conv2d(channels + semantic_channels, projection_channels, 1)
        )
        self.value_colour = value_colour
        colour_channels = 2 * COLOUR_CHANNELS if value_colour else 0  # attended + own colour
        self.fuse = nn.Conv2d(2 * channels + colour_channels, channels, 1, bias=False)
        if semantic_init not in SEMANTIC_INITS:
            raise ValueError(f"semantic_init must be one of {SEMANTIC_INITS}, got {semantic_init!r}")
        self.semantic_init = semantic_init
        if fuse_init not in FUSE_INITS:
            raise ValueError(f"fuse_init must be one of {FUSE_INITS}, got {fuse_init!r}")
        self.fuse_init = fuse_init
        self.apply_inits()

    def apply_inits(self) -> None:
        """Apply ``semantic_init`` and ``fuse_init`` (call again after re-initialising the
        weights, as the authors' network does with its own normal init)."""
        self.reset_semantic_projection()
        if self.fuse_init == "identity":
            channels = self.fuse.weight.shape[0]
            with torch.no_grad():
                self.fuse.weight[:, :channels].mul_(FUSE_ATTENDED_SCALE)
                self.fuse.weight[:, channels : 2 * channels].copy_(torch.eye(channels)[:, :, None, None])

    @torch.no_grad()
    def reset_semantic_projection(self, seed: int = 0) -> None:
        """Apply ``semantic_init='cosine'`` (no-op otherwise or without a semantic grid)."""
        if self.semantic_init != "cosine" or not self.semantic_channels:
            return
        projection, inputs = self.query_projection.weight.shape[:2]
        generator = torch.Generator().manual_seed(seed)
        semantic_map = torch.randn(projection, self.semantic_channels, generator=generator) / projection**0.5
        for layer in {self.query_projection, self.key_projection}:
            layer.weight.zero_()
            layer.weight[:, inputs - self.semantic_channels :, 0, 0] = semantic_map
            if layer.bias is not None:
                layer.bias.zero_()

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        semantic: Tensor | None = None,
        key_mask: Tensor | None = None,
        image: Tensor | None = None,
    ) -> AttentionResult:
        """Args:
        features: ``[B, C, h, w]`` decoder features.
        mask: ``[B, 1, H, W]`` foreground mask at image resolution (or at the grid).
        semantic: ``[B, S, h, w]`` semantic grid, required iff ``semantic_channels > 0``.
        key_mask: ``[B, 1, H, W]``, 1 where a non-foreground cell may serve as a key
            (e.g. 0 over a missing reference); None allows every non-foreground cell.
        image: ``[B, 3, H, W]`` in [-1, 1], the network's input image (required iff
            ``value_colour``).
        """
        batch, channels, height, width = features.shape
        fg_cells = foreground_cells_from_mask(mask, (height, width))  # [B, 1, h, w]
        bg_cells = 1 - fg_cells
        if key_mask is not None:
            bg_cells = bg_cells * foreground_cells_from_mask(key_mask, (height, width))
        projection_input = features
        if self.semantic_channels:
            if semantic is None or semantic.shape[1] != self.semantic_channels:
                got = None if semantic is None else tuple(semantic.shape)
                raise ValueError(f"SGF needs a semantic grid with {self.semantic_channels} channels, got {got}")
            if semantic.shape[-2:] != features.shape[-2:]:
                semantic = F.interpolate(semantic, size=(height, width), mode="bilinear", align_corners=False)
            projection_input = torch.cat([features, semantic], dim=1)  # [B, C+S, h, w]
        queries = self.query_projection(projection_input) * fg_cells  # [B, P, h, w]
        keys = self.key_projection(projection_input) * bg_cells  # [B, P, h, w]
        queries = queries.flatten(2).transpose(1, 2)  # [B, N, P]
        keys = keys.flatten(2)  # [B, P, N]
        queries = queries / (queries.norm(dim=2, keepdim=True) + 1e-8)
        keys = keys / (keys.norm(dim=1, keepdim=True) + 1e-8)
        value_grid = features
        if self.value_colour:
            if image is None:
                raise ValueError("value_colour=True needs the input image (image=[B, 3, H, W])")
            colour = cell_log_colour(image, (height, width))  # [B, 3, h, w]
            value_grid = torch.cat([features, colour], dim=1)  # [B, C+3, h, w]
        values = (value_grid * bg_cells).flatten(2)  # [B, V, N]
        key_valid = bg_cells.flatten(1)[:, None, :]  # [B, 1, N]
        if self.fused and self.training:
            # Rows of non-foreground queries are discarded below; invalid keys carry zero
            # values, so the additive mask reproduces the explicit path exactly.
            additive_mask = ((key_valid - 1) * INVALID_SCORE).to(queries.dtype)  # [B, 1, N]
            attended = F.scaled_dot_product_attention(
                queries, keys.transpose(1, 2), values.transpose(1, 2), attn_mask=additive_mask,
                scale=self.temperature,
            )  # [B, N, V]
            attended = attended.transpose(1, 2)  # [B, V, N]
            weights = None
        else:
            scores = self.temperature * torch.bmm(queries, keys)  # [B, N, N]
            valid = fg_cells.flatten(1)[:, :, None] * key_valid  # [B, N, N]
            scores = scores + (valid - 1) * INVALID_SCORE
            weights = torch.softmax(scores, dim=2) * valid  # [B, N(query), N(key)]
            attended = torch.bmm(values, weights.transpose(1, 2))  # [B, V, N]
        attended = attended.reshape(batch, -1, height, width)  # [B, V, h, w]
        fuse_input = [attended[:, :channels], features]  # attended and own features
        if self.value_colour:
            fuse_input += [attended[:, channels:], colour]  # attended and own log colour
        fused = self.fuse(torch.cat(fuse_input, dim=1))  # [B, C, h, w]
        output = fused * fg_cells + features * (1 - fg_cells)
        return AttentionResult(features=output, weights=weights, foreground_cells=fg_cells)


def key_attention_map(result: AttentionResult, image_size: tuple[int, int]) -> Tensor:
    """The paper's Fig. 3 map: attention received by each key cell, summed over queries.

    Returns ``[B, 1, H, W]`` in [0, 1] (nearest-upsampled, divided by its max).
    """
    if result.weights is None:
        raise ValueError("no attention weights: run the model in eval mode to get attention maps")
    batch, _, height, width = result.foreground_cells.shape
    received = result.weights.sum(dim=1).view(batch, 1, height, width)  # [B, 1, h, w]
    received = F.interpolate(received, size=image_size, mode="nearest")
    peak = received.flatten(1).amax(dim=1).clamp_min(1e-12).view(batch, 1, 1, 1)
    return received / peak

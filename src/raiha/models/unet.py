"""A light U-Net harmonizer for quick runs (any width and depth).

Layout (``w`` = base width, ``d`` = depth; stride ``2**k`` at encoder level ``k``):
  stem c3s1 4->w; d times [c4s2 + InstanceNorm + LeakyReLU(0.2)] doubling the width
  (capped at ``max_width``); decoder: d times [bilinear x2, c3s1, concat skip, c3s1,
  region-aware norm (RAIN by default), ReLU]; 1x1 conv to RGB.
The masked fusion attention (``raiha.models.layers.fusion``) runs on the decoder feature at
stride ``attention_stride`` (1/8 by default, like the authors' network), which must be
at least as fine as the bottleneck.

By default the network predicts a residual that is added to the composite and
clamped to [-1, 1] (``output_mode="residual"``): the untrained network is then the
identity, which makes short CPU runs learn fast. ``output_mode="image"`` predicts the
image through a Tanh, like HDNet and the authors' network. ``output_mode="gain"``
predicts a per-pixel, per-channel log gain ``g`` and relights the composite
multiplicatively, ``(x + o) * exp(g) - o`` on colours in [0, 1] (``o`` = ``GAIN_OFFSET``,
so black pixels can brighten): a change of light is a gain per channel, and the gain
that a reference implies is the difference of log colours that ``value_colour``
attention delivers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from raiha.models.harmonizer_output import HarmonizerOutput
from raiha.models.layers.fusion import AttentionResult, MaskedFusionAttention
from raiha.models.layers.norms import make_norm
from raiha.models.registry import register_harmonizer

ATTENTION_MODES = ("none", "plain", "sgf")
OUTPUT_MODES = ("residual", "image", "gain")
GAIN_OFFSET = 0.01  # output_mode="gain": the offset o in (x + o) * exp(g) - o
MAX_LOG_GAIN = 5.0  # |g| is clamped (exp stays finite; the image is clamped anyway)


class EncoderStage(nn.Module):
    """Stride-2 4x4 convolution, instance norm, LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.norm = nn.InstanceNorm2d(out_channels, affine=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class DecoderStage(nn.Module):
    """Upsample x2, fuse the skip, mask-aware norm, ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        )
        self.merge = nn.Conv2d(out_channels + skip_channels, out_channels, 3, padding=1, bias=False)
        self.norm = make_norm(norm, out_channels)
        self.act = nn.ReLU()

    def forward(self, x: Tensor, skip: Tensor, mask: Tensor) -> Tensor:
        x = self.up(x)  # [B, out, 2h, 2w]
        x = self.merge(torch.cat([x, skip], dim=1))  # [B, out, 2h, 2w]
        return self.act(self.norm(x, mask))


@register_harmonizer("unet")
class UNetHarmonizer(nn.Module):
    """Light U-Net with a replaceable attention block at 1/8 resolution."""

    def __init__(
        self,
        *,
        base_width: int = 16,
        max_width: int = 256,
        depth: int = 3,
        decoder_norm: str = "rain",
        attention: str = "plain",
        attention_stride: int = 8,
        semantic_channels: int = 0,
        shared_projection: bool = False,
        semantic_init: str = "random",
        fuse_init: str = "random",
        value_colour: bool = False,
        temperature: float = 20.0,
        output_mode: str = "residual",
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTION_MODES}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        attention_level = int(math.log2(attention_stride))
        if 2**attention_level != attention_stride or not 0 <= attention_level <= depth:
            raise ValueError(f"attention_stride {attention_stride} needs a power of two <= 2**depth ({2**depth})")
        if attention == "sgf" and semantic_channels <= 0:
            raise ValueError("attention='sgf' needs semantic_channels > 0 (the semantic grid's channels)")
        self.depth = depth
        self.output_mode = output_mode
        self.attention_level = attention_level
        widths = [min(base_width * 2**level, max_width) for level in range(depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(4, widths[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.encoder = nn.ModuleList(EncoderStage(widths[k], widths[k + 1]) for k in range(depth))
        self.decoder = nn.ModuleList(
            DecoderStage(widths[k + 1], widths[k], widths[k], decoder_norm) for k in reversed(range(depth))
        )
        self.attention: MaskedFusionAttention | None = None
        if attention != "none":
            self.attention = MaskedFusionAttention(
                channels=widths[attention_level],
                semantic_channels=semantic_channels if attention == "sgf" else 0,
                shared_projection=shared_projection,
                temperature=temperature,
                semantic_init=semantic_init,
                fuse_init=fuse_init,
                value_colour=value_colour,
            )
        self.head = nn.Conv2d(widths[0], 3, 1)

    def forward(
        self, composite: Tensor, mask: Tensor, semantic: Tensor | None = None, key_mask: Tensor | None = None
    ) -> HarmonizerOutput:
        """Args:
        composite: ``[B, 3, H, W]`` in [-1, 1]; H and W divisible by ``2**depth``.
        mask: ``[B, 1, H, W]`` in [0, 1].
        semantic: ``[B, S, H/8, W/8]`` semantic grid for SGF.
        key_mask: ``[B, 1, H, W]`` where background cells may serve as attention keys.
        """
        skips = [self.stem(torch.cat([composite, mask], dim=1))]  # level 0: [B, w, H, W]
        for stage in self.encoder:
            skips.append(stage(skips[-1]))  # level k: [B, w_k, H/2^k, W/2^k]
        features = skips.pop()  # bottleneck [B, w_d, H/2^d, W/2^d]
        attention: AttentionResult | None = None
        level = self.depth
        if level == self.attention_level:
            attention, features = self._attend(features, mask, semantic, key_mask, composite)
        for stage in self.decoder:
            features = stage(features, skips.pop(), mask)
            level -= 1
            if level == self.attention_level:
                attention, features = self._attend(features, mask, semantic, key_mask, composite)
        head = self.head(features)  # [B, 3, H, W]: residual, image or log gain
        if self.output_mode == "residual":
            image = (composite + head).clamp(-1, 1)
        elif self.output_mode == "gain":
            colour = (composite + 1) / 2  # [B, 3, H, W] in [0, 1]
            relit = (colour + GAIN_OFFSET) * torch.exp(head.clamp(-MAX_LOG_GAIN, MAX_LOG_GAIN)) - GAIN_OFFSET
            image = (2 * relit - 1).clamp(-1, 1)
        else:
            image = torch.tanh(head)
        return HarmonizerOutput(image=image, attention=attention)

    def _attend(
        self, features: Tensor, mask: Tensor, semantic: Tensor | None, key_mask: Tensor | None, image: Tensor
    ) -> tuple[AttentionResult | None, Tensor]:
        if self.attention is None:
            return None, features
        result = self.attention(features, mask, semantic, key_mask, image=image)
        return result, result.features

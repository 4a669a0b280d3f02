"""The authors' harmonizer ``rhnet``: an HDNet-style U-Net with RAIN, DRConv and SGF.

Layout at base width ``w`` (SPEC 4; ``cKsS`` = KxK conv stride S, ``t`` = transposed;
no conv bias; IN = InstanceNorm without affine):
  stem c3s1 in->w; encoder c4s2 w->2w, c3s1 2w->4w, c4s2 4w->8w, c3s1 8w->8w,
  c4s2 8w->8w (1/8), c3s1 8w->8w, each with IN and LeakyReLU(0.2);
  bottleneck c3s1 8w->8w;
  decoder (ReLU, transposed conv, norm, concat skip): t3s1 8w->8w IN +enc6,
  t3s1 16w->8w IN +enc5 -> fusion (SGF) on the 16w feature at 1/8,
  t4s2 16w->8w RAIN +enc4, t3s1 16w->8w RAIN +enc3,
  t4s2 16w->4w RAIN +enc2 DRConv, t3s1 8w->2w RAIN +enc1 DRConv,
  t4s2 4w->w RAIN +stem DRConv; head ReLU, t3s1 2w->3 (bias), Tanh.

The authors' activations run in place, so their skips carry activated features
(SPEC 7). Here every encoder stage ends with its activation, which gives the same
tensors without in-place tricks. ``raiha.models.authors_checkpoint`` maps the
authors' state-dict names onto these modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raiha.models.harmonizer_output import HarmonizerOutput
from raiha.models.layers.drconv import RegionAwareConv
from raiha.models.layers.fusion import AttentionResult, MaskedFusionAttention
from raiha.models.layers.norms import make_norm
from raiha.models.registry import register_harmonizer

ATTENTION_MODES = ("sgf", "plain", "none")
GRID_STRIDE = 8  # the fusion runs at 1/8 resolution
FUSION_AFTER_STAGE = 1  # index of the decoder stage whose output the fusion refines

# (in, out) as multiples of w, kernel size (4 = stride 2, 3 = stride 1)
ENCODER_LAYOUT: tuple[tuple[int, int, int], ...] = (
    (1, 2, 4),
    (2, 4, 3),
    (4, 8, 4),
    (8, 8, 3),
    (8, 8, 4),
    (8, 8, 3),
)
# (in, out, skip) as multiples of w, kernel size, mask-aware norm, DRConv after the concat
DECODER_LAYOUT: tuple[tuple[int, int, int, int, bool, bool], ...] = (
    (8, 8, 8, 3, False, False),
    (16, 8, 8, 3, False, False),
    (16, 8, 8, 4, True, False),
    (16, 8, 8, 3, True, False),
    (16, 4, 4, 4, True, True),
    (8, 2, 2, 3, True, True),
    (4, 1, 1, 4, True, True),
)


class EncoderStage(nn.Module):
    """Convolution, optional instance norm, LeakyReLU(0.2): the output is also the skip."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, normalize: bool = True
    ) -> None:
        super().__init__()
        stride = 2 if kernel_size == 4 else 1
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=1, bias=False
        )
        self.norm = nn.InstanceNorm2d(out_channels, affine=False) if normalize else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, features: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(features)))


class DecoderStage(nn.Module):
    """ReLU, transposed convolution, norm, concat ``[skip, features]``, optional DRConv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        skip_channels: int,
        *,
        kernel_size: int,
        norm: str,
        region_conv: bool,
    ) -> None:
        """Args:
        norm: a ``raiha.models.layers.norms.make_norm`` kind ("rain", "instance", ...).
        region_conv: apply a two-region DRConv to the concatenated feature.
        """
        super().__init__()
        stride = 2 if kernel_size == 4 else 1
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=1, bias=False
        )
        self.norm = make_norm(norm, out_channels)
        merged = skip_channels + out_channels
        self.region_conv = RegionAwareConv(merged, merged) if region_conv else None

    def forward(self, features: Tensor, skip: Tensor, mask: Tensor) -> Tensor:
        features = self.norm(self.conv(F.relu(features)), mask)  # [B, out, h, w]
        features = torch.cat([skip, features], dim=1)  # [B, skip+out, h, w]
        if self.region_conv is not None:
            features = self.region_conv(features, mask)
        return features


@register_harmonizer("rhnet")
class RHNet(nn.Module):
    """The authors' retrieval-augmented harmonizer (checkpoint-compatible layout)."""

    def __init__(
        self,
        *,
        base_width: int = 32,
        semantic_channels: int = 768,
        attention: str = "sgf",
        shared_projection: bool = True,
        semantic_init: str = "random",
        fuse_init: str = "random",
        value_colour: bool = False,
        temperature: float = 20.0,
        input_mask_channel: bool = False,
        decoder_norm: str = "rain",
        region_conv: bool = True,
        init_std: float = 0.02,
    ) -> None:
        """Args:
        base_width: ``w`` of the layout above (32 in the paper).
        semantic_channels: channels of the DVT grid used by SGF (768 for ViT-B).
        attention: "sgf" (Eq. 8-10), "plain" (Eq. 7, no semantic grid) or "none".
        shared_projection: one 1x1 projection for queries and keys (the trained variant).
        semantic_init: ``random`` or ``cosine`` (see :class:`MaskedFusionAttention`).
        fuse_init: ``random`` or ``identity`` (see :class:`MaskedFusionAttention`).
        value_colour: attention values also carry cell log colours (not in the authors'
            checkpoints: their fusion weights then do not fit).
        temperature: scale of the cosine scores (20 in the authors' code).
        input_mask_channel: feed RGB + mask (4 channels) instead of RGB only.
        decoder_norm: the norm of the five upper decoder stages ("rain" by default).
        region_conv: DRConv after the three finest decoder stages.
        init_std: conv weights are drawn from normal(0, init_std), biases zero.
        """
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTION_MODES}")
        if attention == "sgf" and semantic_channels <= 0:
            raise ValueError(
                "attention='sgf' needs semantic_channels > 0; use attention='plain' without a grid"
            )
        self.base_width = base_width
        self.attention_mode = attention
        self.input_mask_channel = input_mask_channel
        width = base_width
        self.stem = EncoderStage(
            4 if input_mask_channel else 3, width, kernel_size=3, normalize=False
        )
        self.encoder = nn.ModuleList(
            EncoderStage(width * cin, width * cout, kernel_size=kernel)
            for cin, cout, kernel in ENCODER_LAYOUT
        )
        self.bottleneck = nn.Conv2d(8 * width, 8 * width, 3, padding=1, bias=False)
        self.decoder = nn.ModuleList(
            DecoderStage(
                width * cin,
                width * cout,
                width * cskip,
                kernel_size=kernel,
                norm=decoder_norm if mask_aware else "instance",
                region_conv=region_conv and with_region_conv,
            )
            for cin, cout, cskip, kernel, mask_aware, with_region_conv in DECODER_LAYOUT
        )
        self.fusion: MaskedFusionAttention | None = None
        if attention != "none":
            self.fusion = MaskedFusionAttention(
                channels=16 * width,
                semantic_channels=semantic_channels if attention == "sgf" else 0,
                shared_projection=shared_projection,
                temperature=temperature,
                semantic_init=semantic_init,
                fuse_init=fuse_init,
                value_colour=value_colour,
            )
        self.head = nn.ConvTranspose2d(2 * width, 3, 3, padding=1)
        self.init_weights(init_std)
        if self.fusion is not None:
            self.fusion.apply_inits()  # semantic_init / fuse_init survive the authors' normal init

    def init_weights(self, std: float = 0.02) -> None:
        """The authors' init: conv weights normal(0, std), conv biases 0 (RAIN stays at 0)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(
        self,
        composite: Tensor,
        mask: Tensor,
        semantic: Tensor | None = None,
        key_mask: Tensor | None = None,
    ) -> HarmonizerOutput:
        """Args:
        composite: ``[B, 3, H, W]`` in [-1, 1]; H and W multiples of 8 (256 x 512 with a
            reference concatenated on the right).
        mask: ``[B, 1, H, W]`` foreground mask (zero over the reference).
        semantic: ``[B, S, H/8, W/8]`` DVT grid, required for ``attention="sgf"``.
        key_mask: ``[B, 1, H, W]``, where background cells may serve as attention keys.
        Returns:
            ``HarmonizerOutput(image=[B, 3, H, W] Tanh output, attention=AttentionResult | None)``.
        """
        self._check_inputs(composite, mask, semantic)
        image_input = torch.cat([composite, mask], dim=1) if self.input_mask_channel else composite
        skips = [self.stem(image_input)]  # [B, w, H, W]
        for stage in self.encoder:
            skips.append(stage(skips[-1]))  # down to [B, 8w, H/8, W/8]
        features = self.bottleneck(skips[-1])  # [B, 8w, H/8, W/8]
        attention: AttentionResult | None = None
        for index, stage in enumerate(self.decoder):
            features = stage(features, skips[-1 - index], mask)
            if index == FUSION_AFTER_STAGE and self.fusion is not None:
                attention = self.fusion(
                    features, mask, semantic if self.attention_mode == "sgf" else None, key_mask, image=composite
                )
                features = attention.features  # [B, 16w, H/8, W/8]
        image = torch.tanh(self.head(F.relu(features)))  # [B, 3, H, W]
        return HarmonizerOutput(image=image, attention=attention)

    def _check_inputs(self, composite: Tensor, mask: Tensor, semantic: Tensor | None) -> None:
        batch, channels, height, width = composite.shape
        if channels != 3 or height % GRID_STRIDE or width % GRID_STRIDE:
            raise ValueError(
                f"rhnet needs a [B, 3, H, W] composite with H and W multiples of {GRID_STRIDE}, "
                f"got {tuple(composite.shape)}; resize or pad the input"
            )
        if mask.shape != (batch, 1, height, width):
            raise ValueError(
                f"mask is {tuple(mask.shape)} but the composite needs [{batch}, 1, {height}, {width}]"
            )
        if self.attention_mode == "sgf" and semantic is None:
            raise ValueError(
                "rhnet(attention='sgf') needs the semantic grid [B, S, H/8, W/8]; pass semantic= "
                "or build the model with attention='plain'"
            )

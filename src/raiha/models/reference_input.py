"""The reference enters the network concatenated to the right of the composite (SPEC 4).

The composite ``[B, 3, S, S]`` and the reference ``[B, 3, S, S]`` become one
``[B, 3, S, 2S]`` input whose mask is zero over the reference, so every reference
cell is a key of the fusion attention and never a query; the semantic grids are
concatenated the same way (``[B, C, S/8, S/4]``); the output is cropped back to the
left half. ``[e_b, e_r]_s`` of the paper is this spatial concatenation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from raiha.models.harmonizer_output import HarmonizerOutput


def harmonize(
    net: nn.Module,
    composite: Tensor,
    mask: Tensor,
    *,
    reference: Tensor | None = None,
    semantic: Tensor | None = None,
    reference_semantic: Tensor | None = None,
    reference_valid: Tensor | None = None,
) -> HarmonizerOutput:
    """Run ``net`` without (``reference=None``) or with a reference; returns the left half.

    Args:
        composite: ``[B, 3, H, W]``; mask ``[B, 1, H, W]``.
        reference: ``[B, 3, H, W]`` or None.
        semantic / reference_semantic: ``[B, C, h, w]`` grids (SGF) or None.
        reference_valid: ``[B]`` bool; a sample whose reference is missing gets no keys
            from the reference half (it is harmonized from its own background).
    """
    if reference is None:
        return net(composite, mask, semantic)
    if reference.shape != composite.shape:
        raise ValueError(f"reference {tuple(reference.shape)} must match the composite {tuple(composite.shape)}")
    width = composite.shape[-1]
    wide_image = torch.cat([composite, reference], dim=-1)  # [B, 3, H, 2W]
    wide_mask = torch.cat([mask, torch.zeros_like(mask)], dim=-1)  # [B, 1, H, 2W]
    wide_semantic = None
    if semantic is not None:
        if reference_semantic is None:
            raise ValueError("SGF with a reference needs the reference's semantic grid too")
        wide_semantic = torch.cat([semantic, reference_semantic], dim=-1)  # [B, C, h, 2w]
    key_mask = None
    if reference_valid is not None and not bool(reference_valid.all()):
        reference_keys = reference_valid.to(mask.dtype).view(-1, 1, 1, 1).expand_as(mask)
        key_mask = torch.cat([torch.ones_like(mask), reference_keys], dim=-1)  # [B, 1, H, 2W]
    output = net(wide_image, wide_mask, wide_semantic, key_mask)
    return HarmonizerOutput(image=output.image[..., :width], attention=output.attention)

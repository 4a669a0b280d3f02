"""Masked fusion attention: who queries, who serves as key, what changes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from raiha.models.layers.fusion import (
    LOG_COLOUR_OFFSET,
    MaskedFusionAttention,
    cell_log_colour,
    foreground_cells_from_mask,
    key_attention_map,
)


def _mask(size: int = 32) -> torch.Tensor:
    mask = torch.zeros(2, 1, size, size)
    mask[0, :, 3:13, 2:12] = 1  # touches cells (0..1, 0..1) of a 4x4 grid of 8 px cells
    mask[1, :, 20:22, 20:22] = 1  # one cell
    return mask


def test_foreground_cells_any_pixel_counts() -> None:
    cells = foreground_cells_from_mask(_mask(), (4, 4))
    assert cells.shape == (2, 1, 4, 4)
    assert cells[0, 0].sum() == 4 and cells[0, 0, :2, :2].all()
    assert cells[1, 0].sum() == 1 and cells[1, 0, 2, 2] == 1


def test_grid_must_divide_the_mask() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        foreground_cells_from_mask(torch.zeros(1, 1, 30, 30), (4, 4))


def test_background_never_queries_and_foreground_never_serves_as_key() -> None:
    torch.manual_seed(0)
    attention = MaskedFusionAttention(channels=8).eval()
    features = torch.randn(2, 8, 4, 4)
    result = attention(features, _mask())
    fg = result.foreground_cells.flatten(1)  # [B, N]
    weights = result.weights  # [B, N, N]
    assert weights.shape == (2, 16, 16)
    assert weights[fg == 0].abs().sum() == 0  # rows of background cells
    assert (weights * fg[:, None, :]).abs().sum() == 0  # columns of foreground cells
    row_sums = weights.sum(dim=2)[fg == 1]
    torch.testing.assert_close(row_sums, torch.ones_like(row_sums))
    # background cells pass through untouched; foreground cells change
    bg = (1 - result.foreground_cells).bool().expand_as(features)
    assert torch.equal(result.features[bg], features[bg])
    assert not torch.allclose(result.features[~bg], features[~bg])


def test_foreground_output_depends_only_on_background_values() -> None:
    """Changing a foreground cell's value changes only that cell (its fused self)."""
    torch.manual_seed(1)
    attention = MaskedFusionAttention(channels=4).eval()
    features = torch.randn(2, 4, 4, 4)
    changed = features.clone()
    changed[0, :, 0, 0] += 3.0  # a foreground cell of image 0
    before = attention(features, _mask()).features
    after = attention(changed, _mask()).features
    difference = (before - after).abs().sum(dim=1)[0]  # [h, w]
    assert difference[0, 0] > 0
    difference[0, 0] = 0
    # other fg cells attend to bg keys only, whose values did not change; the query
    # projection of cell (0, 0) is not used by other cells
    assert difference.max() < 1e-5


def test_semantic_grid_changes_attention() -> None:
    torch.manual_seed(2)
    attention = MaskedFusionAttention(channels=8, semantic_channels=6, shared_projection=True).eval()
    assert attention.key_projection is attention.query_projection
    features = torch.randn(2, 8, 4, 4)
    semantic = torch.randn(2, 6, 4, 4)
    first = attention(features, _mask(), semantic).weights
    second = attention(features, _mask(), semantic.flip(-1)).weights
    assert not torch.allclose(first, second)
    with pytest.raises(ValueError, match="semantic grid with 6 channels"):
        attention(features, _mask())


def test_key_attention_map_is_normalised() -> None:
    attention = MaskedFusionAttention(channels=4).eval()
    result = attention(torch.randn(2, 4, 4, 4), _mask())
    heat = key_attention_map(result, (32, 32))
    assert heat.shape == (2, 1, 32, 32)
    assert torch.allclose(heat.flatten(1).amax(dim=1), torch.ones(2))
    assert heat.min() >= 0


@pytest.mark.parametrize("with_key_mask", [False, True])
def test_fused_training_kernel_equals_the_explicit_attention(with_key_mask: bool) -> None:
    torch.manual_seed(3)
    attention = MaskedFusionAttention(channels=8, semantic_channels=4)
    features, semantic = torch.randn(2, 8, 4, 4), torch.randn(2, 4, 4, 4)
    key_mask = None
    if with_key_mask:
        key_mask = torch.ones(2, 1, 32, 32)
        key_mask[1, :, :, 16:] = 0  # the right half of image 1 may not serve as keys
    fused = attention.train()(features, _mask(), semantic, key_mask)
    explicit = attention.eval()(features, _mask(), semantic, key_mask)
    assert fused.weights is None and explicit.weights is not None
    torch.testing.assert_close(fused.features, explicit.features, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="eval mode"):
        key_attention_map(fused, (32, 32))


def test_cosine_semantic_init_starts_attention_on_the_matching_cells() -> None:
    """With ``semantic_init='cosine'`` an untrained SGF block already attends to the key cell
    whose semantic vector matches the query's, whatever the decoder features say."""
    torch.manual_seed(0)
    channels, semantic_channels = 16, 32
    block = MaskedFusionAttention(channels=channels, semantic_channels=semantic_channels, semantic_init="cosine").eval()
    random_block = MaskedFusionAttention(channels=channels, semantic_channels=semantic_channels).eval()
    features = torch.randn(1, channels, 4, 4)
    semantic = F.normalize(torch.randn(1, semantic_channels, 4, 4), dim=1)
    semantic[:, :, 3, 3] = semantic[:, :, 0, 0]  # key cell 15 shows what query cell 0 shows
    mask = torch.zeros(1, 1, 4, 4)
    mask[:, :, 0, 0] = 1  # cell 0 is the only query
    weights = block(features, mask, semantic).weights[0, 0]  # [16]
    assert int(weights.argmax()) == 15 and weights[15] > 0.5
    assert random_block(features, mask, semantic).weights[0, 0, 15] < 0.5
    with pytest.raises(ValueError, match="semantic_init"):
        MaskedFusionAttention(channels=channels, semantic_channels=semantic_channels, semantic_init="other")


def test_rhnet_keeps_the_cosine_init_after_its_own_weight_init() -> None:
    from raiha.models.rhnet import RHNet

    net = RHNet(base_width=4, attention="sgf", semantic_channels=8, semantic_init="cosine")
    weight = net.fusion.query_projection.weight[:, :, 0, 0]  # [P, C + S]
    assert weight[:, :-8].abs().max() == 0 and weight[:, -8:].abs().max() > 0


def test_identity_fuse_init_starts_as_a_near_no_op_on_the_foreground() -> None:
    """``fuse_init='identity'``: the untrained block keeps the foreground features (plus a
    small attended term); the default init replaces them by a random mix."""
    from raiha.models.rhnet import RHNet

    torch.manual_seed(0)
    features = torch.randn(2, 16, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2, :2] = 1
    identity = MaskedFusionAttention(channels=16, fuse_init="identity").eval()
    default = MaskedFusionAttention(channels=16).eval()
    fg = mask.bool().expand_as(features)
    kept = identity(features, mask).features
    change = (kept - features)[fg].abs().mean() / features[fg].abs().mean()
    assert 0 < change < 0.2
    assert (default(features, mask).features - features)[fg].abs().mean() / features[fg].abs().mean() > 0.5
    net = RHNet(base_width=4, attention="plain", fuse_init="identity")  # survives the authors' init
    torch.testing.assert_close(net.fusion.fuse.weight[:, 64:, 0, 0], torch.eye(64))
    with pytest.raises(ValueError, match="fuse_init"):
        MaskedFusionAttention(channels=16, fuse_init="zero")


def test_cell_log_colour_is_the_log_of_each_cells_mean_colour() -> None:
    image = torch.full((1, 3, 16, 16), -1.0)  # black
    image[0, 0, :8, :8] = 1.0  # cell (0, 0): red channel white
    image[0, 1, 8:, 8:12] = 0.0  # cell (1, 1): half its pixels green 0.5, half black -> mean 0.25
    colour = cell_log_colour(image, (2, 2))
    assert colour.shape == (1, 3, 2, 2)
    offset = LOG_COLOUR_OFFSET
    torch.testing.assert_close(colour[0, 0, 0, 0], torch.tensor(math.log(1.0 + offset)))
    torch.testing.assert_close(colour[0, 1, 1, 1], torch.tensor(math.log(0.25 + offset)))
    torch.testing.assert_close(colour[0, 2], torch.full((2, 2), math.log(offset)))
    with pytest.raises(ValueError, match="not a multiple"):
        cell_log_colour(torch.zeros(1, 3, 15, 16), (2, 2))


def test_value_colour_carries_the_attended_cells_colour_to_the_foreground() -> None:
    """With ``value_colour`` the foreground output follows the colour of the key cells (here
    the right half of the image, a 'reference') at fixed features; without it, it does not.
    Foreground pixels' own colour also enters (the query's own colour), background output
    never changes."""
    torch.manual_seed(2)
    features = torch.randn(2, 8, 4, 8)
    mask = torch.zeros(2, 1, 32, 64)
    mask[:, :, 0:16, 0:16] = 1  # foreground cells (0..1, 0..1)
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    recoloured = image.clone()
    recoloured[:, 0, :, 32:] = -0.9  # the reference half turns un-red
    with_colour = MaskedFusionAttention(channels=8, value_colour=True).eval()
    first = with_colour(features, mask, image=image)
    second = with_colour(features, mask, image=recoloured)
    fg = first.foreground_cells.bool().expand_as(features)
    assert not torch.allclose(first.features[fg], second.features[fg])
    assert torch.equal(first.features[~fg], second.features[~fg])
    torch.testing.assert_close(first.weights, second.weights)  # colour is a value, not a key
    torch.manual_seed(2)
    without_colour = MaskedFusionAttention(channels=8).eval()
    torch.testing.assert_close(
        without_colour(features, mask, image=image).features, without_colour(features, mask, image=recoloured).features
    )
    with pytest.raises(ValueError, match="needs the input image"):
        with_colour(features, mask)


def test_value_colour_fused_kernel_equals_the_explicit_attention() -> None:
    torch.manual_seed(3)
    attention = MaskedFusionAttention(channels=8, value_colour=True, fuse_init="identity")
    features = torch.randn(2, 8, 4, 4)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    fused = attention.train()(features, _mask(), image=image).features
    explicit = attention.eval()(features, _mask(), image=image).features
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "block"), [("unet", "attention"), ("rhnet", "fusion")])
def test_harmonizers_hand_their_input_image_to_a_value_colour_fusion(name: str, block: str) -> None:
    """The network's input (reference half included) reaches the fusion, which then fuses
    2 x 3 colour channels next to the features."""
    from raiha.models.registry import create_harmonizer

    net = create_harmonizer(name, base_width=4, attention="plain", value_colour=True).eval()
    fusion = getattr(net, block)
    seen: dict[str, torch.Tensor] = {}
    fusion.register_forward_pre_hook(lambda _, args, kwargs: seen.update(kwargs), with_kwargs=True)
    composite = torch.rand(1, 3, 32, 64) * 2 - 1
    mask = torch.zeros(1, 1, 32, 64)
    mask[:, :, 8:20, 4:16] = 1
    net(composite, mask)
    assert torch.equal(seen["image"], composite)
    channels = fusion.fuse.weight.shape[0]
    assert fusion.fuse.weight.shape[1] == 2 * channels + 6

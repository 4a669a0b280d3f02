"""Image panels: composite | reference | output | target | mask | attention maps."""

from __future__ import annotations

import torch

from raiha.evaluation.drawing import attention_overlay, harmonization_grid
from raiha.models.registry import create_harmonizer
from raiha.training.lit_module import HarmonizationModule

SIZE = 32


def _batch(count: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(count, 1, SIZE, SIZE)
    mask[:, :, 8:20, 8:20] = 1
    return {
        "composite": torch.rand(count, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "real": torch.rand(count, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "reference": torch.rand(count, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "mask": mask,
    }


def test_overlay_is_grey_without_heat_and_red_with_full_heat() -> None:
    image = torch.zeros(1, 3, 4, 4)  # mid grey in [-1, 1]
    cold = (attention_overlay(image, torch.zeros(1, 1, 4, 4)) + 1) / 2
    assert torch.allclose(cold, torch.full_like(cold, 0.25))  # dimmed grey
    hot = (attention_overlay(image, torch.ones(1, 1, 4, 4)) + 1) / 2
    assert torch.allclose(hot[0, :, 0, 0], torch.tensor([1.0, 0.1, 0.0]))


def test_grid_has_one_column_per_panel() -> None:
    batch = _batch()
    tile = SIZE + 2  # make_grid padding
    plain = harmonization_grid(batch["composite"], batch["real"], batch["real"], batch["mask"])
    assert plain.shape == (3, 2 * tile + 2, 4 * tile + 2)
    wide_map = torch.rand(2, 1, SIZE, 2 * SIZE)
    full = harmonization_grid(
        batch["composite"], batch["real"], batch["real"], batch["mask"],
        reference=batch["reference"], attention_map=wide_map,
    )  # fmt: skip
    assert full.shape == (3, 2 * tile + 2, 7 * tile + 2)
    assert 0.0 <= full.min() and full.max() <= 1.0


def test_eval_steps_return_attention_maps_over_background_and_reference() -> None:
    net = create_harmonizer("unet", base_width=8, depth=3, attention="plain")
    module = HarmonizationModule(net, evaluate_with_reference=True).eval()
    batch = _batch()
    with torch.no_grad():
        output = module(batch, use_reference=True)
        outputs = module._step_outputs(batch, output.image, output)
    heat = outputs["attention_map"]
    assert heat.shape == (2, 1, SIZE, 2 * SIZE)
    assert torch.allclose(heat.flatten(1).amax(dim=1), torch.ones(2))  # normalised per image
    foreground = batch["mask"].bool()  # [B, 1, H, W]
    assert heat[..., :SIZE][foreground].max() == 0  # foreground cells are never keys
    assert heat[..., SIZE:].sum() > 0  # the reference receives attention
    with torch.no_grad():
        alone = module(batch, use_reference=False)
        assert module._step_outputs(batch, alone.image, alone)["attention_map"].shape == (2, 1, SIZE, SIZE)


def test_grids_carry_column_titles() -> None:
    """Issue 17 item 11: the saved grids say which column is which."""
    from raiha.evaluation.drawing import add_column_titles, titled_harmonization_grid

    batch = _batch()
    grid, titles = titled_harmonization_grid(batch["composite"], batch["real"], batch["real"], batch["mask"],
                                             attention_map=torch.rand(2, 1, SIZE, SIZE))  # fmt: skip
    assert titles == ["composite", "output", "target", "mask", "attention"]
    plain = harmonization_grid(batch["composite"], batch["real"], batch["real"], batch["mask"],
                               attention_map=torch.rand(2, 1, SIZE, SIZE))  # fmt: skip
    strip = grid.shape[1] - plain.shape[1]
    assert strip >= 12 and grid.shape[2] == plain.shape[2]
    header = grid[:, :strip]  # [3, T, W]: white with dark text in every column
    column = (grid.shape[2] - 2) / len(titles)
    for index in range(len(titles)):
        cells = header[:, :, int(2 + index * column) : int(2 + (index + 1) * column)]
        assert (cells < 0.5).any(), f"column {titles[index]} has no title"
    _, wide = titled_harmonization_grid(batch["composite"], batch["real"], batch["real"], batch["mask"],
                                        reference=batch["reference"], attention_map=torch.rand(2, 1, SIZE, 2 * SIZE))  # fmt: skip
    assert wide == ["composite", "reference", "output", "target", "mask", "attn: bg", "attn: ref"]
    blank = add_column_titles(torch.ones(3, 10, 50), ["", ""])
    assert torch.equal(blank, torch.ones_like(blank))  # nothing but the white strip without text

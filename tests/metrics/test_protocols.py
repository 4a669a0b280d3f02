"""Every scoring protocol: known answers on a constructed image, and a cross-check against a
straightforward numpy implementation of its codebase's formulas on real iHarmony4 files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raiha.io.image_io import load_rgb, load_soft_mask
from raiha.metrics.per_image import per_image_scores, score_levels
from raiha.metrics.protocols import PROTOCOLS, get_protocol, protocols_markdown
from tests.conftest import shared_file


def constructed() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2 x 2 levels: pred 100 (one value 50), target 110 (one value 120), mask 1 / 0.6 / 0.2 / 0."""
    pred = torch.full((1, 3, 2, 2), 100.0)
    target = torch.full((1, 3, 2, 2), 110.0)
    target[0, 0, 0, 0] = 120.0  # squared errors: 400 at (0,0,c0), 100 elsewhere ...
    pred[0, 2, 1, 1] = 50.0  # ... and 3600 at (1,1,c2): total 5000 over 12 values
    mask = torch.tensor([[1.0, 0.6], [0.2, 0.0]], dtype=torch.float64).reshape(1, 1, 2, 2)
    return pred, target, mask


KNOWN = {
    # hard fMSE: pixels with mask > 0.5 hold 600 + 300 -> / (3 * 2)
    "paper": {"mse": 5000 / 12, "psnr": 10 * math.log10(255**2 / (5000 / 12)), "fmse": 150.0},
    # soft fMSE: 600 + 0.6 * 300 + 0.2 * 300 = 840 over 3 * 1.8; peak = target max 120
    "is2am": {"mse": 5000 / 12, "psnr": 10 * math.log10(120**2 / (5000 / 12 + 1e-6)), "fmse": 840 / (5.4 + 1e-6)},
    # masked MSE: 840 / 12 = 70; peak 255
    "pctnet": {"mse": 70.0, "psnr": 10 * math.log10(255**2 / (70 + 1e-6)), "fmse": 840 / (5.4 + 1e-6)},
    # peak = pred range 100 - 50; fMSE = sum(m^2 err) = 600 + 108 + 12 over 3 * floor(1.8)
    "harmonizer": {"mse": 5000 / 12, "psnr": 10 * math.log10(50**2 / (5000 / 12)), "fmse": 240.0},
}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_known_answers_on_a_constructed_image(name: str) -> None:
    pred, target, mask = constructed()
    scores = score_levels(pred, target, mask, name)
    for key, expected in KNOWN[name].items():
        assert float(scores[key][0]) == pytest.approx(expected, rel=1e-12), key
    assert float(scores["fg_ratio"][0]) == 0.5  # 2 of 4 pixels above 0.5, under every protocol


def test_row_blocks_give_the_same_scores_as_one_block() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 256, (2, 3, 37, 11), generator=generator).double()
    target = torch.randint(0, 256, (2, 3, 37, 11), generator=generator).double()
    mask = torch.rand((2, 1, 37, 11), generator=generator)
    for name in PROTOCOLS:
        whole = score_levels(pred, target, mask, name)
        blocked = score_levels(pred, target, mask, name, block_rows=5)
        for key in whole:
            torch.testing.assert_close(blocked[key], whole[key], rtol=1e-12, atol=0)


def test_quantisation_of_model_outputs_per_protocol() -> None:
    """[-1, 1] outputs: paper truncates to uint8 levels, the float protocols keep sub-level errors."""
    target = torch.zeros(1, 3, 2, 2)  # 127.5 in levels
    pred = target + 0.6 / 127.5  # 128.1 in levels
    mask = torch.ones(1, 1, 2, 2)
    paper = per_image_scores(pred, target, mask, "paper")  # floor: 128 vs 127 -> error 1
    assert float(paper["mse"][0]) == pytest.approx(1.0)
    for name in ("is2am", "pctnet", "harmonizer"):
        assert float(per_image_scores(pred, target, mask, name)["mse"][0]) == pytest.approx(0.36, rel=1e-5)


def test_every_protocol_states_its_conventions() -> None:
    table = protocols_markdown()
    for name in PROTOCOLS:
        described = get_protocol(name).describe()
        assert described["name"] == name and f"| {name} |" in table
        assert {"quantisation", "psnr_peak", "fmse", "background", "resolution", "source"} <= set(described)
    with pytest.raises(ValueError, match=r"choose one of \['paper', 'is2am', 'pctnet', 'harmonizer'\]"):
        get_protocol("hdnet")


# ----------------------------------------------------------------------------- numpy reference
def numpy_reference(name: str, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The codebases' formulas on uint8 ``[H, W, 3]`` images and a soft mask ``[H, W]``."""
    pred, gt = pred.astype(np.float64), gt.astype(np.float64)
    err = (pred - gt) ** 2
    m = mask.astype(np.float64)[:, :, None]
    if name == "paper":  # HDNet: skimage mse / psnr(255), fMSE over mask > 0.5
        mse = err.mean()
        fg = (m > 0.5).astype(np.float64)
        return {"mse": mse, "psnr": 10 * np.log10(255**2 / mse), "fmse": (err * fg).sum() / (3 * fg.sum())}
    if name == "is2am":
        mse = err.mean()
        return {"mse": mse, "psnr": 10 * np.log10(gt.max() ** 2 / (mse + 1e-6)),
                "fmse": (m * err).sum() / (3 * m.sum() + 1e-6)}  # fmt: skip
    if name == "pctnet":
        mse = (m * err).mean()
        return {"mse": mse, "psnr": 10 * np.log10(255**2 / (mse + 1e-6)),
                "fmse": (m * err).sum() / (3 * m.sum() + 1e-6)}  # fmt: skip
    mse = err.mean()  # harmonizer
    fmse = ((pred * m - gt * m) ** 2).mean() * err.shape[0] * err.shape[1] / int(m.sum())
    return {"mse": mse, "psnr": 10 * np.log10((pred.max() - pred.min()) ** 2 / mse), "fmse": fmse}


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("composite", ["c35030_gct", "c35030_hgm"])
def test_numpy_cross_check_on_real_samples(shared_data_dir, name: str, composite: str) -> None:
    folder = "real_samples/Image-Harmonization-Dataset-iHarmony4/color_transfer_methods/data"
    real = load_rgb(shared_file(shared_data_dir, f"{folder}/c35030.jpg"))
    pred = load_rgb(shared_file(shared_data_dir, f"{folder}/{composite}.jpg"))
    mask = load_soft_mask(shared_file(shared_data_dir, f"{folder}/c35030_434421.jpg"))
    expected = numpy_reference(name, pred, real, mask)
    as_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None]  # noqa: E731 - [1, 3, H, W]
    ours = score_levels(as_tensor(pred), as_tensor(real), torch.from_numpy(mask)[None, None], name, block_rows=64)
    for key, value in expected.items():
        assert float(ours[key][0]) == pytest.approx(value, rel=1e-9), key
    assert float(ours["fg_ratio"][0]) == pytest.approx(float((mask > 0.5).mean()))

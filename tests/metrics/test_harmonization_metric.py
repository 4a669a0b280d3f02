"""HarmonizationMetrics: image-weighted "All", deduplication, merging, reset and errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from raiha.metrics.harmonization_metric import HarmonizationMetrics, first_occurrence_indices

SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")


def batch_with_level_errors(level_errors: list[float]) -> tuple[torch.Tensor, ...]:
    """2x2 RGB images; image i differs from its target by ``level_errors[i]`` levels in one value.

    Paper-protocol MSE of image i is ``level_errors[i]**2 / 12``; fMSE ``level_errors[i]**2 / 3``.
    """
    batch = len(level_errors)
    target_levels = torch.full((batch, 3, 2, 2), 100.25)  # [B, 3, 2, 2]
    pred_levels = target_levels.clone()
    pred_levels[:, 0, 0, 0] += torch.tensor(level_errors)
    mask = torch.zeros(batch, 1, 2, 2)
    mask[:, 0, 0, 0] = 1.0
    to_unit = lambda levels: (levels.double() / 255.0 * 2.0 - 1.0).float()  # noqa: E731
    return to_unit(pred_levels), to_unit(target_levels), mask


def long(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def test_all_is_image_weighted_not_mean_of_subsets() -> None:
    metric = HarmonizationMetrics(SUBSETS)
    pred, target, mask = batch_with_level_errors([12.0, 6.0, 6.0, 6.0])  # mse 12, 3, 3, 3
    metric.update(
        pred, target, mask, subset_idx=long([0, 1, 1, 1]), sample_index=long([0, 1, 2, 3])
    )
    results = metric.compute()
    assert results["protocol"] == "paper"
    assert set(results["subsets"]) == {"HCOCO", "HAdobe5k"}  # empty subsets omitted
    psnr_12 = 10 * math.log10(255**2 / 12)
    assert results["subsets"]["HCOCO"] == pytest.approx(
        {"n": 1, "mse": 12.0, "psnr": psnr_12, "fmse": 48.0}
    )
    assert results["subsets"]["HAdobe5k"]["n"] == 3
    assert results["subsets"]["HAdobe5k"]["mse"] == pytest.approx(3.0)
    assert results["all"]["n"] == 4
    assert results["all"]["mse"] == pytest.approx((12 + 3 * 3) / 4)  # 5.25, not (12 + 3) / 2
    expected_psnr = (10 * math.log10(255**2 / 12) + 3 * 10 * math.log10(255**2 / 3)) / 4
    assert results["all"]["psnr"] == pytest.approx(expected_psnr)
    assert results["all"]["fmse"] == pytest.approx((48 + 3 * 12) / 4)


def test_duplicate_sample_index_counts_once_and_first_is_kept() -> None:
    metric = HarmonizationMetrics(SUBSETS)
    pred, target, mask = batch_with_level_errors([12.0, 6.0])
    metric.update(pred, target, mask, subset_idx=long([0, 0]), sample_index=long([7, 8]))
    # padded batch repeating sample 7, here with a different score to see which row is kept
    pred_pad, target_pad, mask_pad = batch_with_level_errors([0.0])
    metric.update(pred_pad, target_pad, mask_pad, subset_idx=long([0]), sample_index=long([7]))
    results = metric.compute()
    assert results["all"]["n"] == 2
    assert results["all"]["mse"] == pytest.approx((12 + 3) / 2)
    rows = metric.per_image_rows()
    assert [row["sample_index"] for row in rows] == [7, 8]
    assert rows[0]["subset"] == "HCOCO" and rows[0]["subset_idx"] == 0
    assert (rows[0]["mse"], rows[0]["fmse"]) == pytest.approx((12.0, 48.0))
    assert rows[1]["mse"] == pytest.approx(3.0)


def test_two_halves_merged_equal_one_metric_on_whole() -> None:
    errors = [12.0, 6.0, 3.0, 9.0, 1.0, 4.0]
    subset_idx, sample_index = long([0, 1, 2, 3, 1, 0]), long([0, 1, 2, 3, 4, 5])
    pred, target, mask = batch_with_level_errors(errors)
    whole = HarmonizationMetrics(SUBSETS)
    whole.update(pred, target, mask, subset_idx, sample_index)
    first_half, second_half = HarmonizationMetrics(SUBSETS), HarmonizationMetrics(SUBSETS)
    first_half.update(pred[:3], target[:3], mask[:3], subset_idx[:3], sample_index[:3])
    # the second rank also sees sample 0 again, as a DistributedSampler pads it
    rank1 = [3, 4, 5, 0]
    second_half.update(
        pred[rank1], target[rank1], mask[rank1], subset_idx[rank1], sample_index[rank1]
    )
    first_half.merge_state(second_half)
    merged, expected = first_half.compute(), whole.compute()
    assert merged["all"]["n"] == 6
    _assert_results_close(merged, expected)


def _assert_results_close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    assert actual["subsets"].keys() == expected["subsets"].keys()
    for name in expected["subsets"]:
        assert actual["subsets"][name] == pytest.approx(expected["subsets"][name])
    assert actual["all"] == pytest.approx(expected["all"])


def test_reset_clears_rows_and_empty_compute_raises() -> None:
    metric = HarmonizationMetrics(SUBSETS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        with pytest.raises(RuntimeError, match="no images"):
            metric.compute()
    pred, target, mask = batch_with_level_errors([6.0])
    metric.update(pred, target, mask, long([2]), long([0]))
    assert metric.compute()["all"]["mse"] == pytest.approx(3.0)
    metric.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="no images"):
            metric.compute()
    metric.update(*batch_with_level_errors([12.0]), long([3]), long([0]))
    results = metric.compute()
    assert list(results["subsets"]) == ["Hday2night"]
    assert results["all"]["mse"] == pytest.approx(12.0)


def test_is2am_protocol_and_nan_fmse_left_out() -> None:
    metric = HarmonizationMetrics(SUBSETS, protocol="is2am")
    pred, target, mask = batch_with_level_errors([10.0, 10.0])
    metric.update(pred, target, mask, long([0, 0]), long([0, 1]))
    results = metric.compute()
    assert results["protocol"] == "is2am"
    assert results["all"]["mse"] == pytest.approx(100 / 12, rel=1e-5)

    paper_metric = HarmonizationMetrics(SUBSETS)
    mask_with_empty = mask.clone()
    mask_with_empty[1] = 0.0  # image 1 has no fg pixel: its fMSE is NaN
    paper_metric.update(pred, target, mask_with_empty, long([0, 0]), long([0, 1]))
    assert paper_metric.compute()["all"]["fmse"] == pytest.approx(100 / 3)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown evaluation protocol"):
        HarmonizationMetrics(SUBSETS, protocol="hdnet")
    with pytest.raises(ValueError, match="non-empty list"):
        HarmonizationMetrics("HCOCO")
    metric = HarmonizationMetrics(SUBSETS)
    pred, target, mask = batch_with_level_errors([1.0, 2.0])
    with pytest.raises(ValueError, match="outside 0..3"):
        metric.update(pred, target, mask, long([0, 4]), long([0, 1]))
    with pytest.raises(ValueError, match="one of each per image"):
        metric.update(pred, target, mask, long([0]), long([0, 1]))


def test_first_occurrence_indices_known_answer() -> None:
    assert first_occurrence_indices(long([5, 3, 5, 7, 3])).tolist() == [0, 1, 3]
    assert first_occurrence_indices(long([2, 2, 2])).tolist() == [0]

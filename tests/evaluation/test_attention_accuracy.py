"""Attention mass on the matching reference object."""

from __future__ import annotations

import math

import torch

from raiha.evaluation.attention_accuracy import AttentionOnMatch


def test_known_answers() -> None:
    # grid 2 x 4 (composite 2x2 | reference 2x2), images 16 x 16 (cells of 8 px)
    fg = torch.zeros(2, 1, 2, 4)
    fg[:, :, 0, 0] = 1  # one query cell
    match = torch.zeros(2, 1, 16, 16)
    match[:, :, :8, :8] = 1  # the matching object fills reference cell (0, 0) -> wide index 2
    weights = torch.zeros(2, 8, 8)
    weights[0, 0, 2] = 1.0  # sample 0: all attention on the match
    weights[1, 0, 3] = 0.75  # sample 1: a quarter on the match
    weights[1, 0, 2] = 0.25
    metric = AttentionOnMatch()
    metric.update(weights, fg, match)
    result = metric.compute()
    assert result["n"] == 2
    assert math.isclose(result["attention_on_match"], (1.0 + 0.25) / 2)
    assert math.isclose(result["match_area_share"], 0.25)
    assert math.isclose(result["reference_mass"], 1.0, rel_tol=1e-6)  # every weight is on reference cells
    assert math.isclose(result["on_match_within_reference"], 0.625, rel_tol=1e-6)
    assert math.isclose(result["match_key_share"], 1 / 7, rel_tol=1e-6)  # 8 cells, 1 query: 7 keys, 1 matching


def test_attention_on_the_composite_background_is_not_reference_mass() -> None:
    fg = torch.zeros(1, 1, 2, 4)
    fg[:, :, 0, 0] = 1
    match = torch.zeros(1, 1, 16, 16)
    match[:, :, :8, :8] = 1
    weights = torch.zeros(1, 8, 8)
    weights[0, 0, 1] = 0.6  # composite background (wide index 1)
    weights[0, 0, 2] = 0.4  # the match
    result = AttentionOnMatch()
    result.update(weights, fg, match)
    scores = result.compute()
    assert math.isclose(scores["reference_mass"], 0.4, rel_tol=1e-6)
    assert math.isclose(scores["on_match_within_reference"], 1.0, rel_tol=1e-6)


def test_samples_without_a_match_are_not_scored() -> None:
    metric = AttentionOnMatch()
    metric.update(torch.rand(1, 8, 8), torch.ones(1, 1, 2, 4), torch.zeros(1, 1, 16, 16))
    assert metric.compute()["n"] == 0

"""The paper's constant-then-linear schedule."""

from __future__ import annotations

import pytest

from raiha.training.lr_schedule import constant_then_linear_factor


def test_paper_recipe_known_values() -> None:
    factor = [constant_then_linear_factor(e, constant_epochs=40, total_epochs=60) for e in range(60)]
    assert factor[:41] == [1.0] * 41
    assert factor[50] == pytest.approx(0.5)
    assert factor[59] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(factor, factor[1:]))


def test_all_constant_and_bad_arguments() -> None:
    assert constant_then_linear_factor(9, constant_epochs=10, total_epochs=10) == 1.0
    with pytest.raises(ValueError, match="constant_epochs"):
        constant_then_linear_factor(0, constant_epochs=11, total_epochs=10)
    with pytest.raises(ValueError, match="total_epochs"):
        constant_then_linear_factor(0, constant_epochs=0, total_epochs=0)

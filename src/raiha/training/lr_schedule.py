"""The paper's learning-rate schedule: constant, then linear decay to zero (per epoch)."""

from __future__ import annotations


def constant_then_linear_factor(epoch: int, *, constant_epochs: int, total_epochs: int) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based).

    Constant 1.0 for the first ``constant_epochs`` epochs, then falls linearly so that
    the epoch after the last would reach zero: with 40 constant of 60 total, epoch 40
    uses 1.0, epoch 50 uses 0.5 and epoch 59 uses 0.05 (the paper's recipe).
    """
    if total_epochs <= 0:
        raise ValueError(f"total_epochs must be positive, got {total_epochs}")
    if not 0 <= constant_epochs <= total_epochs:
        raise ValueError(f"constant_epochs must lie in [0, {total_epochs}], got {constant_epochs}")
    if epoch < constant_epochs or constant_epochs == total_epochs:
        return 1.0
    decay_epochs = total_epochs - constant_epochs
    return max(0.0, (total_epochs - epoch) / decay_epochs)

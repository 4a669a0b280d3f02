"""raiha: retrieval-augmented image harmonization (Wang et al., arXiv 2412.13916).

``from raiha import Harmonizer`` harmonizes your own composites with a trained checkpoint
(:mod:`raiha.inference`); the training, evaluation and retrieval commands are
``python -m raiha.train`` / ``raiha.eval`` / ``raiha.retrieve`` / ``raiha.harmonize``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HarmonizationResult", "Harmonizer"]


def __getattr__(name: str) -> Any:
    # lazy: `import raiha` stays cheap (no torch import) for the CLI entry points
    if name in __all__:
        from raiha import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'raiha' has no attribute {name!r}")

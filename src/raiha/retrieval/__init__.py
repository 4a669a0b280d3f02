"""Harmonization-oriented retrieval (paper III-B, SPEC section 3), in three layers:

- ``features/``: what an image is to retrieval: dense content extractors behind
  ``create_extractor(name)`` (``dinov2``, ``dvt``, the weight-free ``synthetic``), the DVT
  denoiser, per-patch HSV histograms (appearance), grid conventions and the query type.
- ``store/``: gallery features computed once into sharded, optionally compressed stores,
  keyed by their config and resumable; the gallery protocol the search reads.
- ``search/``: the validity rule and its exact scan (``rule``), the exact patch index
  that prunes, the list search over a split, and the search settings.

``settings`` parses the ``retrieval`` config group; ``pipeline`` runs extraction, stores
and search for a dataset (RAHarmony4 lists); ``ground_truth_score`` scores lists on the
synthetic world. Lower layers never import higher ones (``make lint``).
"""

from __future__ import annotations

from raiha.retrieval.features.registry import (
    available_extractors,
    create_extractor,
    register_extractor,
)

__all__ = ["available_extractors", "create_extractor", "register_extractor"]

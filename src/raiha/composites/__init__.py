"""Composites from one's own photos: an iHarmony4-layout dataset for fine-tuning.

``make_composites(photos, masks, out, CompositeConfig(...))`` changes each object's
appearance (Lab statistics transfer, illuminant, tone curves, a smooth 3D LUT; see
``appearance``), keeps the background bit-identical and writes a manifest from which every
composite is reproducible (``rebuild_composite``). Entry point: ``python -m raiha.make_composites``.
"""

from __future__ import annotations

from raiha.composites.appearance import (
    CHANGES,
    LabStats,
    apply_change,
    apply_lut,
    draw_params,
    identity_lattice,
)
from raiha.composites.composite import Composite, attempt_seed, make_composite
from raiha.composites.config import DEFAULT_CHANGES, CompositeConfig
from raiha.composites.maker import make_composites, split_photos
from raiha.composites.manifest import MANIFEST_FILE, read_manifest, rebuild_composite

__all__ = [
    "CHANGES",
    "DEFAULT_CHANGES",
    "MANIFEST_FILE",
    "Composite",
    "CompositeConfig",
    "LabStats",
    "apply_change",
    "apply_lut",
    "attempt_seed",
    "draw_params",
    "identity_lattice",
    "make_composite",
    "make_composites",
    "read_manifest",
    "rebuild_composite",
    "split_photos",
]

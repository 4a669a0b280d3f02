"""The manifest of a composite dataset, and rebuilding any composite from it (its seed).

``manifest.json`` lists every composite with ``seed`` (the try that passed), ``change`` and
``params``; ``rebuild_composite`` redraws the change and its parameters from the seed alone,
reading the real image and mask from the dataset, and returns the same uint8 pixels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raiha.composites.appearance import LabStats
from raiha.composites.composite import Composite, make_composite
from raiha.composites.config import CompositeConfig
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_mask, load_rgb
from raiha.io.split_lists import MASK_DIR, REAL_DIR

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


def object_key(photo_id: str, number: int) -> str:
    """The key (and mask stem) of object ``number`` of a photo: ``<photo>_<number>``."""
    return f"{photo_id}_{number}"


def candidate_references(
    photo_id: str, splits: Mapping[str, str], object_keys: Mapping[str, Sequence[str]]
) -> list[str]:
    """Objects ``lab_transfer`` may copy from: those of the *other* photos of the same split, sorted."""
    split = splits[photo_id]
    return sorted(
        key for other, keys in object_keys.items() if other != photo_id and splits[other] == split for key in keys
    )


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``<root>/manifest.json`` (RaihaDataError when missing or of another version)."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise RaihaDataError(f"{path} not found: {root} was not written by raiha.make_composites (or is incomplete)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise RaihaDataError(f"{path}: manifest version {manifest.get('format_version')!r}, expected {MANIFEST_VERSION}")
    return manifest


def rebuild_composite(root: str | Path, manifest: Mapping[str, Any], entry: Mapping[str, Any]) -> Composite:
    """Recompute the composite of manifest ``entry`` from its seed (and the dataset's real images and masks)."""
    root = Path(root)
    cfg = CompositeConfig.from_mapping(manifest["config"])
    splits = {photo["id"]: photo["split"] for photo in manifest["photos"]}
    object_keys = {photo["id"]: [object_key(photo["id"], o["number"]) for o in photo["objects"]] for photo in manifest["photos"]}
    references = candidate_references(entry["photo"], splits, object_keys)
    stats: dict[str, LabStats] = {}
    if entry["change"] == "lab_transfer":
        key = entry["params"]["reference"]
        photo_id = key.rsplit("_", 1)[0]
        reference_real = load_rgb(root / cfg.subset / REAL_DIR / f"{photo_id}.jpg")
        reference_mask = load_mask(root / cfg.subset / MASK_DIR / f"{key}.png")
        stats[key] = LabStats.of(reference_real[reference_mask].astype(np.float64) / 255.0)
    real = load_rgb(root / entry["real"])
    mask = load_mask(root / entry["mask"])
    return make_composite(real, mask, int(entry["seed"]), cfg, references, stats)

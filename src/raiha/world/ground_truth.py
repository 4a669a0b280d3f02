"""Ground truth of a synthetic world: what each image shows, and which references are relevant.

``ground_truth.json`` holds::

    {"format_version": 1,
     "images": {"easy/real_images/e000123.jpg": {
         "split": "train", "subset": "easy", "illuminant": 2, "materials": [wall, floor],
         "objects": [{"identity": 17, "class": 4, "bbox": [x0, y0, x1, y1], "visible_fraction": 0.97}, ...],
         "foreground": {"identity": 17, "class": 4, "composite_illuminant": 5},
         "composite": "easy/composite_images/e000123_1_1.jpg", "mask": "easy/masks/e000123_1.png"}, ...},
     "identities": [{"class": 4, "palette": [[r, g, b], [r, g, b]]}, ...],
     "illuminants": [...], "materials": [...], "classes": [...]}

Objects are listed in draw order, the foreground last; boxes are in pixels with x1, y1
exclusive. A reference is *relevant* to a composite when it is a train real image (not
the composite's own) that shows the foreground identity (as any of its objects) under
the composite's background illuminant.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from raiha.io.errors import RaihaDataError
from raiha.world.catalogue import Catalogue
from raiha.world.plan import SceneSpec

GROUND_TRUTH_FILE = "ground_truth.json"
GROUND_TRUTH_VERSION = 1


def scene_paths(spec: SceneSpec) -> dict[str, str]:
    """Paths relative to the root: ``real``, ``composite`` and ``mask`` (iHarmony4 naming)."""
    return {
        "real": f"{spec.subset}/real_images/{spec.name}.jpg",
        "composite": f"{spec.subset}/composite_images/{spec.name}_1_1.jpg",
        "mask": f"{spec.subset}/masks/{spec.name}_1.png",
    }


def image_entry(spec: SceneSpec, catalogue: Catalogue, labels: np.ndarray) -> dict[str, Any]:
    """The ground-truth record of one scene; ``labels`` is the rendered label map ``[S, S]``."""
    visible = np.bincount(labels.ravel() + 1, minlength=len(spec.objects) + 1)[1:]  # [num_objects]
    objects = []
    for index, obj in enumerate(spec.objects):
        x0, y0, x1, y1 = obj.bbox
        objects.append(
            {
                "identity": obj.identity,
                "class": int(catalogue.identity_classes[obj.identity]),
                "bbox": [x0, y0, x1, y1],
                "visible_fraction": round(float(visible[index]) / float((x1 - x0) * (y1 - y0)), 4),
            }
        )
    paths = scene_paths(spec)
    return {
        "split": spec.split,
        "subset": spec.subset,
        "illuminant": spec.illuminant,
        "materials": list(spec.materials),
        "objects": objects,
        "foreground": {
            "identity": spec.foreground.identity,
            "class": int(catalogue.identity_classes[spec.foreground.identity]),
            "composite_illuminant": spec.composite_illuminant,
            "composite_gains": [round(g, 6) for g in spec.composite_gains],
        },
        "composite": paths["composite"],
        "mask": paths["mask"],
    }


def load_ground_truth(root: str | Path) -> dict[str, Any]:
    """Read ``<root>/ground_truth.json`` of a generated world."""
    path = Path(root) / GROUND_TRUTH_FILE
    if not path.is_file():
        raise RaihaDataError(
            f"{path} is missing: {root} is not a generated synthetic world; "
            "run `python -m raiha.synth --out DIR` or call ensure_world()"
        )
    ground_truth = json.loads(path.read_text(encoding="utf-8"))
    if ground_truth.get("format_version") != GROUND_TRUTH_VERSION:
        raise RaihaDataError(
            f"{path} has format_version {ground_truth.get('format_version')!r}, expected "
            f"{GROUND_TRUTH_VERSION}; regenerate the world"
        )
    return ground_truth


def _real_key(ground_truth: dict[str, Any], composite_key: str) -> str:
    """The real-image key of a composite path (a real-image key is returned unchanged)."""
    images = ground_truth["images"]
    if composite_key in images:
        return composite_key
    for real_key, entry in images.items():
        if entry["composite"] == composite_key:
            return real_key
    raise KeyError(
        f"{composite_key!r} is neither a real image nor a composite of this ground truth"
    )


def _gallery_index(ground_truth: dict[str, Any]) -> dict[tuple[int, int], set[str]]:
    """``(identity, illuminant) -> train real images showing it``."""
    index: dict[tuple[int, int], set[str]] = defaultdict(set)
    for real_key, entry in ground_truth["images"].items():
        if entry["split"] == "train":
            for obj in entry["objects"]:
                index[(obj["identity"], entry["illuminant"])].add(real_key)
    return index


def _relevant(
    entry: dict[str, Any], real_key: str, index: dict[tuple[int, int], set[str]]
) -> set[str]:
    return index.get((entry["foreground"]["identity"], entry["illuminant"]), set()) - {real_key}


def relevant_references(ground_truth: dict[str, Any], composite_key: str) -> set[str]:
    """Train real images relevant to one composite (its own real image excluded).

    Args:
        ground_truth: ``load_ground_truth(root)``.
        composite_key: the composite's path (``"easy/composite_images/e000123_1_1.jpg"``)
            or its real image's key (``"easy/real_images/e000123.jpg"``).
    """
    real_key = _real_key(ground_truth, composite_key)
    return _relevant(ground_truth["images"][real_key], real_key, _gallery_index(ground_truth))


def relevant_reference_table(ground_truth: dict[str, Any]) -> dict[str, set[str]]:
    """``relevant_references`` for every composite at once: composite path -> set of real keys."""
    index = _gallery_index(ground_truth)
    return {
        entry["composite"]: _relevant(entry, real_key, index)
        for real_key, entry in ground_truth["images"].items()
    }

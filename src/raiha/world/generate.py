"""Write a synthetic world to disk in the iHarmony4 layout, atomically and cached by config.

Layout under the root (subsets ``easy`` and ``hard``; ids global, 6 digits)::

    easy/composite_images/e000123_1_1.jpg   easy/masks/e000123_1.png   easy/real_images/e000123.jpg
    hard/...                                (prefix h)
    IHD_train.txt IHD_test.txt              "easy/composite_images/e000123_1_1.jpg" per line
    easy_train.txt easy_test.txt hard_train.txt hard_test.txt   bare composite names
    ground_truth.json                       see raiha.world.ground_truth
    world.json                              config, cache key, catalogue, counts, coverage

Images are RGB JPEG (``cfg.jpeg_quality``, full-resolution chroma: 4:2:0 subsampling
would blur every colour edge of a 64 px object), PIL defaults otherwise, masks single-channel
PNG with values 0/255. ``world.json`` is written last and marks a complete world.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from raiha.io.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from raiha.io.build_journal import record_build
from raiha.world.catalogue import build_catalogue
from raiha.world.config import FORMAT_VERSION, SyntheticWorldConfig
from raiha.world.ground_truth import (
    GROUND_TRUTH_FILE,
    GROUND_TRUTH_VERSION,
    image_entry,
    relevant_reference_table,
    scene_paths,
)
from raiha.world.plan import SPLITS, SUBSETS, SceneSpec, plan_world
from raiha.world.render import render_scene

log = logging.getLogger(__name__)

WORLD_FILE = "world.json"
CACHE_FOLDER = "synthetic"


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> uint8 with rounding."""
    return (image * 255.0 + 0.5).astype(np.uint8)


def _write_lists(root: Path, scenes: list[SceneSpec]) -> None:
    """``IHD_<split>.txt`` (subset-prefixed paths) and ``<subset>_<split>.txt`` (bare names)."""
    for split in SPLITS:
        in_split = [spec for spec in scenes if spec.split == split]
        lines = [scene_paths(spec)["composite"] for spec in in_split]
        atomic_write_text(root / f"IHD_{split}.txt", "".join(f"{line}\n" for line in lines))
        for subset in SUBSETS:
            names = [
                scene_paths(spec)["composite"].split("/")[-1]
                for spec in in_split
                if spec.subset == subset
            ]
            atomic_write_text(
                root / f"{subset}_{split}.txt", "".join(f"{name}\n" for name in names)
            )


def _coverage(ground_truth: dict[str, Any], num_identities: int) -> dict[str, Any]:
    """How well the train gallery serves retrieval (written to world.json, logged)."""
    table = relevant_reference_table(ground_truth)
    images = ground_truth["images"]
    composite_split = {entry["composite"]: entry["split"] for entry in images.values()}
    scenes_per_identity: Counter[int] = Counter()
    for entry in images.values():
        if entry["split"] == "train":
            scenes_per_identity.update({obj["identity"] for obj in entry["objects"]})
    result: dict[str, Any] = {
        "identities_in_train": len(scenes_per_identity),
        "min_train_scenes_per_identity": min(
            (scenes_per_identity.get(i, 0) for i in range(num_identities)), default=0
        ),
    }
    for split in SPLITS:
        counts = [len(refs) for key, refs in table.items() if composite_split[key] == split]
        result[f"{split}_with_relevant_reference"] = (
            round(float(np.mean([c > 0 for c in counts])), 4) if counts else None
        )
        result[f"{split}_mean_relevant_references"] = (
            round(float(np.mean(counts)), 2) if counts else None
        )
    return result


def _write_world(root: Path, cfg: SyntheticWorldConfig) -> dict[str, Any]:
    """Render and write every file of the world into ``root``; returns the world.json content."""
    catalogue = build_catalogue(cfg)
    scenes = plan_world(cfg)
    for subset in SUBSETS:
        for folder in ("composite_images", "masks", "real_images"):
            (root / subset / folder).mkdir(parents=True, exist_ok=True)
    images: dict[str, Any] = {}
    for spec in scenes:
        rendered = render_scene(spec, catalogue, cfg.shading_strength)
        paths = scene_paths(spec)
        Image.fromarray(_to_uint8(rendered.real)).save(
            root / paths["real"], quality=cfg.jpeg_quality, subsampling=0
        )
        Image.fromarray(_to_uint8(rendered.composite)).save(
            root / paths["composite"], quality=cfg.jpeg_quality, subsampling=0
        )
        mask_image = Image.fromarray(rendered.mask.astype(np.uint8) * 255)  # 2-D uint8 -> mode "L"
        mask_image.save(root / paths["mask"])
        images[paths["real"]] = image_entry(spec, catalogue, rendered.labels)
    _write_lists(root, scenes)
    summary = catalogue.summary()
    ground_truth = {"format_version": GROUND_TRUTH_VERSION, "images": images, **summary}
    atomic_write_json(root / GROUND_TRUTH_FILE, ground_truth, indent=1)
    counts = Counter(f"{spec.subset}_{spec.split}" for spec in scenes)
    world = {
        "format_version": FORMAT_VERSION,
        "cache_key": cfg.cache_key(),
        "config": cfg.to_dict(),
        "counts": {
            f"{subset}_{split}": counts.get(f"{subset}_{split}", 0)
            for subset in SUBSETS
            for split in SPLITS
        },
        "coverage": _coverage(ground_truth, cfg.num_identities),
        "catalogue": {
            "illuminants": summary["illuminants"],
            "materials": summary["materials"],
            "classes": [entry["name"] for entry in summary["classes"]],
            "num_identities": cfg.num_identities,
        },
    }
    atomic_write_json(root / WORLD_FILE, world)  # last: marks the world complete
    return world


def generate_world(root: str | Path, cfg: SyntheticWorldConfig) -> Path:
    """Generate ``cfg``'s world at ``root`` (built in a temp folder, then renamed; replaces ``root``)."""
    root = Path(root)
    start = time.perf_counter()
    log.info(
        "generating synthetic world %s (%d train, %d test, %d px) at %s",
        cfg.cache_key(),
        cfg.num_train,
        cfg.num_test,
        cfg.image_size,
        root,
    )
    with atomic_directory(root) as tmp_root:
        world = _write_world(tmp_root, cfg)
    record_build(root, "synthetic_world", time.perf_counter() - start, cache_key=cfg.cache_key())
    log.info(
        "synthetic world %s done in %.1f s: counts %s, coverage %s",
        cfg.cache_key(),
        time.perf_counter() - start,
        world["counts"],
        world["coverage"],
    )
    return root


def world_root(data_dir: str | Path, cfg: SyntheticWorldConfig) -> Path:
    """Where ``ensure_world`` keeps ``cfg``'s world: ``<data_dir>/synthetic/<cache_key>``."""
    return Path(data_dir) / CACHE_FOLDER / cfg.cache_key()


def ensure_world(data_dir: str | Path, cfg: SyntheticWorldConfig) -> Path:
    """Return ``<data_dir>/synthetic/<cfg.cache_key()>``, generating it unless ``world.json`` is there."""
    root = world_root(data_dir, cfg)
    if (root / WORLD_FILE).is_file():
        log.info("synthetic world %s found at %s", cfg.cache_key(), root)
        return root
    return generate_world(root, cfg)

"""Write an iHarmony4-layout dataset of composites made from one's own photos and masks.

Layout under ``out`` (``S`` = ``cfg.subset``, default ``own``)::

    S/real_images/<photo>.jpg        the photo (a JPEG is copied byte for byte; other formats
                                     are encoded at jpeg_quality with 4:4:4 chroma)
    S/masks/<photo>_<k>.png          object k, 0/255
    S/composite_images/<photo>_<k>_<v>.png   variant v of object k: lossless, so its
                                     background is bit-identical to the decoded real photo
    IHD_train.txt IHD_test.txt  S_train.txt S_test.txt   split by photo
    manifest.json                    config, photos, every composite's change, seed and
                                     parameters, skipped inputs; written last

Everything is built in a temporary folder and renamed onto ``out``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from raiha.composites.appearance import LabStats
from raiha.composites.composite import attempt_seed, make_composite
from raiha.composites.config import CompositeConfig
from raiha.composites.inputs import PhotoEntry, scan_inputs
from raiha.composites.manifest import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    candidate_references,
    object_key,
)
from raiha.io.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_rgb
from raiha.io.split_lists import COMPOSITE_DIR, MASK_DIR, REAL_DIR, make_record, write_split

log = logging.getLogger(__name__)


def split_photos(photo_ids: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """photo id -> "train" | "test": a seeded shuffle, at least one photo on each side."""
    if len(photo_ids) < 2:
        raise RaihaDataError(
            f"{len(photo_ids)} usable photo(s) {photo_ids}: a train/test split by photo needs at least 2 "
            "(see the manifest's or the log's skipped list for the others)"
        )
    order = list(photo_ids)
    np.random.default_rng(seed).shuffle(order)
    num_test = min(len(order) - 1, max(1, int(round(len(order) * test_fraction))))
    return {photo: ("test" if index < num_test else "train") for index, photo in enumerate(order)}


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file() and not overwrite:
        raise RaihaDataError(
            f"out={out} exists, is not empty and holds no {MANIFEST_FILE}: refusing to replace it; "
            "choose a new folder or pass overwrite=true"
        )


def _write_real(entry: PhotoEntry, target: Path, jpeg_quality: int) -> None:
    if entry.photo.suffix.lower() in (".jpg", ".jpeg"):
        shutil.copyfile(entry.photo, target)  # no generation loss
    else:
        Image.fromarray(load_rgb(entry.photo)).save(target, quality=jpeg_quality, subsampling=0)


def _write_sources(root: Path, photos: list[PhotoEntry], cfg: CompositeConfig) -> dict[str, LabStats]:
    """Real images and object masks; returns each object's Lab statistics on the written real image."""
    subset = root / cfg.subset
    for folder in (COMPOSITE_DIR, MASK_DIR, REAL_DIR):
        (subset / folder).mkdir(parents=True, exist_ok=True)
    stats: dict[str, LabStats] = {}
    for entry in photos:
        real_path = subset / REAL_DIR / f"{entry.photo_id}.jpg"
        _write_real(entry, real_path, cfg.jpeg_quality)
        real = load_rgb(real_path)  # [H, W, 3] what every reader of the dataset sees
        for obj in entry.objects:
            key = object_key(entry.photo_id, obj.number)
            Image.fromarray(obj.mask.astype(np.uint8) * 255).save(subset / MASK_DIR / f"{key}.png")
            stats[key] = LabStats.of(real[obj.mask].astype(np.float64) / 255.0)
    return stats


def _write_composites(
    root: Path, photos: list[PhotoEntry], splits: dict[str, str], stats: dict[str, LabStats], cfg: CompositeConfig
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every valid composite (tries until one passes); returns manifest entries and failures."""
    entries: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    object_keys = {e.photo_id: [object_key(e.photo_id, o.number) for o in e.objects] for e in photos}
    for photo_index, entry in enumerate(photos):
        real_rel = f"{cfg.subset}/{REAL_DIR}/{entry.photo_id}.jpg"
        real = load_rgb(root / real_rel)
        references = candidate_references(entry.photo_id, splits, object_keys)
        for obj in entry.objects:
            key = object_key(entry.photo_id, obj.number)
            for variant in range(1, cfg.composites_per_object + 1):
                name = f"{key}_{variant}.png"
                for attempt in range(cfg.max_tries):
                    seed = attempt_seed(cfg.seed, photo_index, obj.number, variant, attempt)
                    composite = make_composite(real, obj.mask, seed, cfg, references, stats)
                    if composite.is_valid(cfg):
                        break
                else:
                    failures.append({"file": name, "reason": f"no valid draw in {cfg.max_tries} tries (last: "
                                     f"{composite.change}, change {composite.foreground_change:.1f}, "
                                     f"clipped {composite.clipped_fraction:.1%})"})
                    continue
                record = make_record(cfg.subset, name)
                Image.fromarray(composite.image).save(root / record.composite)
                entries.append({
                    "composite": record.composite, "mask": record.mask, "real": record.real,
                    "split": splits[entry.photo_id], "photo": entry.photo_id, "object": obj.number,
                    "variant": variant, "seed": seed, "attempt": attempt, "change": composite.change,
                    "params": composite.params, "foreground_change": round(composite.foreground_change, 4),
                    "clipped_fraction": round(composite.clipped_fraction, 6),
                })
    return entries, failures


def _write_lists(root: Path, entries: list[dict[str, Any]], subset: str) -> None:
    for split in ("train", "test"):
        records = [make_record(subset, Path(e["composite"]).name) for e in entries if e["split"] == split]
        write_split(root, split, records)
        atomic_write_text(root / f"{subset}_{split}.txt", "".join(f"{Path(r.composite).name}\n" for r in records))


def make_composites(photos_dir: str | Path, masks_dir: str | Path, out: str | Path, cfg: CompositeConfig,
                    overwrite: bool = False) -> dict[str, Any]:
    """Build the dataset at ``out`` (see the module docstring); returns the manifest."""
    start = time.perf_counter()
    out = Path(out).expanduser()
    _check_out(out, overwrite)
    scan = scan_inputs(Path(photos_dir).expanduser(), Path(masks_dir).expanduser(), cfg)
    for skip in scan.skipped:
        log.warning("skipped %s: %s", skip["file"], skip["reason"])
    splits = split_photos([entry.photo_id for entry in scan.photos], cfg.test_fraction, cfg.seed)
    with atomic_directory(out) as root:
        stats = _write_sources(root, scan.photos, cfg)
        entries, failures = _write_composites(root, scan.photos, splits, stats, cfg)
        if not any(e["split"] == "test" for e in entries) or not any(e["split"] == "train" for e in entries):
            raise RaihaDataError(f"no valid composite in one of the splits ({failures[:4]}); "
                                 "lower min_foreground_change or raise max_clipped_fraction / max_tries")
        _write_lists(root, entries, cfg.subset)
        manifest = {
            "format_version": MANIFEST_VERSION,
            "config": cfg.to_dict(),
            "photos": [{"id": e.photo_id, "source": str(e.photo), "mask_source": str(e.mask), "split": splits[e.photo_id],
                        "objects": [{"number": o.number, "instance_id": o.instance_id,
                                     "area_fraction": round(o.area_fraction, 6)} for o in e.objects]}
                       for e in scan.photos],
            "composites": entries,
            "skipped": scan.skipped + failures,
            "counts": {split: sum(e["split"] == split for e in entries) for split in ("train", "test")},
            "seconds": round(time.perf_counter() - start, 2),
        }
        atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)  # last: marks a complete dataset
    log.info("%d composites (%s) from %d photos written to %s in %.1f s; %d skipped",
             len(entries), manifest["counts"], len(scan.photos), out, manifest["seconds"], len(manifest["skipped"]))
    return manifest

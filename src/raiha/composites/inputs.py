"""Scan a photo folder and a mask folder: usable photos with their objects, and what was skipped.

Problems and what happens (each skip is listed in the manifest with its reason):
- a photo without a mask: skipped (``missing_mask=skip``) or an error (``missing_mask=error``);
- an unreadable photo or mask, or a mask of another size than its photo: an error naming
  the file(s) (``unreadable=error``) or skipped (``unreadable=skip``);
- an empty object, one under ``min_object_fraction`` of the photo or over
  ``max_object_fraction`` (a full mask has no background to match): that object is skipped;
  a photo left without objects is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from raiha.composites.config import CompositeConfig
from raiha.composites.masks import (
    ObjectMask,
    find_mask,
    is_instance_map,
    list_photos,
    object_masks,
    read_mask,
)
from raiha.io.errors import RaihaDataError
from raiha.io.image_io import load_rgb


@dataclass(frozen=True)
class PhotoEntry:
    """A usable photo: its output id (no ``_``), source files and objects."""

    photo_id: str
    photo: Path
    mask: Path
    objects: tuple[ObjectMask, ...]


@dataclass
class ScanResult:
    photos: list[PhotoEntry]
    skipped: list[dict[str, str]]  # {"file", "reason"}


def photo_id_for(stem: str, taken: set[str]) -> str:
    """A file-name-safe id without ``_`` (iHarmony4 names split on it), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-") or "photo"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate


def _check_objects(objects: list[ObjectMask], mask_path: Path, cfg: CompositeConfig, skipped: list) -> list[ObjectMask]:
    kept = []
    for obj in objects:
        where = f"{mask_path} (object {obj.number}" + (f", id {obj.instance_id})" if obj.instance_id is not None else ")")
        fraction = obj.area_fraction
        if fraction == 0.0:
            skipped.append({"file": where, "reason": "empty mask: no foreground pixel (> 127)"})
        elif fraction < cfg.min_object_fraction:
            skipped.append({"file": where, "reason": f"object covers {fraction:.2%} < min_object_fraction {cfg.min_object_fraction:.2%}"})
        elif fraction > cfg.max_object_fraction:
            skipped.append({"file": where, "reason": f"object covers {fraction:.2%} > max_object_fraction {cfg.max_object_fraction:.2%} (nearly full mask: no background)"})
        else:
            kept.append(obj)
    return [ObjectMask(number, obj.instance_id, obj.mask) for number, obj in enumerate(kept, start=1)]


def _read_objects(photo: Path, mask_path: Path, cfg: CompositeConfig) -> list[ObjectMask]:
    """Decode photo and mask, check their sizes, split the mask into objects."""
    image = load_rgb(photo)  # [H, W, 3]: a full decode, so broken photos fail here, named
    pixels = read_mask(mask_path)
    height, width = image.shape[:2]
    if pixels.size != (width, height):
        raise RaihaDataError(
            f"mask {mask_path} is {pixels.size[0]}x{pixels.size[1]} but photo {photo} is {width}x{height}; "
            "a mask must be pixel-aligned with its photo (same size)"
        )
    try:
        instances = is_instance_map(pixels, cfg.instances, cfg.max_instance_ids)
    except RaihaDataError as error:
        raise RaihaDataError(f"mask {mask_path}: {error}") from error
    return object_masks(pixels, instances)


def scan_inputs(photos_dir: Path, masks_dir: Path, cfg: CompositeConfig) -> ScanResult:
    """Match photos with masks and read their objects (see the module docstring for problems)."""
    if not masks_dir.is_dir():
        raise RaihaDataError(f"masks folder {masks_dir} does not exist; pass masks=DIR")
    photos: list[PhotoEntry] = []
    skipped: list[dict[str, str]] = []
    taken: set[str] = set()
    for photo in list_photos(photos_dir):
        mask_path = find_mask(photo, masks_dir)
        if mask_path is None:
            message = f"no mask for photo {photo} in {masks_dir} (looked for {photo.stem}.png/.jpg/... and {photo.stem}_mask.*)"
            if cfg.missing_mask == "error":
                raise RaihaDataError(message + "; add it or pass missing_mask=skip")
            skipped.append({"file": str(photo), "reason": "no mask"})
            continue
        try:
            objects = _read_objects(photo, mask_path, cfg)
        except RaihaDataError as error:
            if cfg.unreadable == "error":
                raise
            skipped.append({"file": str(photo), "reason": str(error)})
            continue
        objects = _check_objects(objects, mask_path, cfg, skipped)
        if not objects:
            skipped.append({"file": str(photo), "reason": "no usable object in its mask"})
            continue
        photos.append(PhotoEntry(photo_id_for(photo.stem, taken), photo, mask_path, tuple(objects)))
    return ScanResult(photos, skipped)

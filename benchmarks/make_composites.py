"""How long does ``raiha.make_composites`` take per composite, against just storing the photos?

Prints ONE JSON line. ``--photos`` generated photos of ``--size`` px (a smooth colour field,
one ellipse object, saved as PNG so the real images must be encoded) and their masks are
turned into ``--per-object`` composites each with the default config (all four changes);
``baseline`` decodes every photo and mask and writes the photo as JPEG plus one PNG per
composite with the unchanged pixels (the I/O a composite maker cannot avoid). Reported:
seconds of each, milliseconds per composite, their ratio, and tries per kept composite.
CPU only (numpy); ``--device`` is accepted for the benchmark convention and must be cpu.

Usage: python benchmarks/make_composites.py [--photos 24] [--size 512] [--per-object 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from raiha.composites import CompositeConfig, make_composites
from raiha.io.image_io import load_mask, load_rgb


def write_photos(root: Path, count: int, size: int) -> tuple[Path, Path]:
    """``count`` PNG photos and masks of ``size`` px."""
    rng = np.random.default_rng(0)
    photos, masks = root / "photos", root / "masks"
    photos.mkdir()
    masks.mkdir()
    y, x = np.mgrid[0:size, 0:size] / size
    for index in range(count):
        corners = rng.uniform(40, 215, size=(2, 3))
        image = corners[0] * (1 - x[..., None]) + corners[1] * x[..., None] + rng.normal(0, 5, (size, size, 3))
        cy, cx, r = rng.uniform(0.35, 0.65, size=3) * np.array([1, 1, 0.5])
        mask = (y - cy) ** 2 + (x - cx) ** 2 <= r**2
        image[mask] = image[mask] * 0.5 + rng.uniform(30, 120, size=3)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(photos / f"p{index}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"p{index}.png")
    return photos, masks


def baseline(photos: Path, masks: Path, out: Path, per_object: int) -> None:
    """Decode photos and masks, write each photo as JPEG and ``per_object`` unchanged PNGs."""
    out.mkdir()
    for photo in sorted(photos.iterdir()):
        image, _ = load_rgb(photo), load_mask(masks / photo.name)
        Image.fromarray(image).save(out / f"{photo.stem}.jpg", quality=100, subsampling=0)
        real = load_rgb(out / f"{photo.stem}.jpg")
        for variant in range(per_object):
            Image.fromarray(real).save(out / f"{photo.stem}_{variant}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--per-object", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos, masks = write_photos(root, args.photos, args.size)
        start = time.perf_counter()
        baseline(photos, masks, root / "baseline", args.per_object)
        baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        manifest = make_composites(photos, masks, root / "out", CompositeConfig(composites_per_object=args.per_object))
        maker_s = time.perf_counter() - start
    composites = len(manifest["composites"])
    tries = sum(entry["attempt"] + 1 for entry in manifest["composites"]) / max(composites, 1)
    print(json.dumps({
        "benchmark": "make_composites", "device": args.device, "photos": args.photos, "size": args.size,
        "composites": composites, "make_composites_s": round(maker_s, 3), "baseline_io_s": round(baseline_s, 3),
        "ms_per_composite": round(1000 * maker_s / max(composites, 1), 2),
        "baseline_ms_per_composite": round(1000 * baseline_s / max(composites, 1), 2),
        "ratio_vs_baseline": round(maker_s / baseline_s, 2), "tries_per_composite": round(tries, 3),
    }))


if __name__ == "__main__":
    main()

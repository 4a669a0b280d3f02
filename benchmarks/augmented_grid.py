"""Semantic grid of an augmented reference: crop the cached grid, or recompute the extractor?

Prints ONE JSON line. For ``--samples`` train scenes of a generated synthetic world, an
augmented reference is drawn exactly as training draws it (196/256 crop holding >= 50 %
of the foreground, resize, random flip), then its grid is obtained two ways:

- ``crop``: the real image's cached grid cropped and resampled with the same box
  (``apply_crop_box``, what raiha does);
- ``recompute``: the extractor run on the augmented image (what the authors' code does).

Reported: milliseconds per sample of each (and their ratio), and how alike the two grids
are: mean cosine over cells where both are non-zero, the share of such cells with cosine
>= eps_c (0.7, the retrieval rule's content threshold) and, for SGF, how strongly the
composite's foreground cells find their object in the reference: the mean over
foreground cells of their best cosine to any reference cell, with each grid.
The extractor is the weight-free ``synthetic`` one; ``--vit NAME`` also times a timm ViT
(random weights: its grid agreement would mean nothing) at ``--vit-size`` px per image.

Usage: python benchmarks/augmented_grid.py [--samples 200] [--size 64] [--vit vit_base_patch14_reg4_dinov2 --vit-size 448]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from raiha.data.references.augmented_reference import apply_crop_box, augmented_reference
from raiha.io.image_io import load_mask, load_rgb
from raiha.io.split_lists import read_split
from raiha.retrieval import create_extractor
from raiha.world import SyntheticWorldConfig, generate_world

EPS_C = 0.7


def _load(root: Path, relative: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(load_rgb(root / relative))).permute(2, 0, 1).float() / 127.5 - 1


def _time_vit(name: str, size: int, repeats: int) -> float:
    import timm

    model = timm.create_model(name, pretrained=False, img_size=size, num_classes=0).eval()
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        model.forward_features(image)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model.forward_features(image)
    return (time.perf_counter() - start) / repeats * 1000


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vit", default=None, help="also time this timm ViT per augmented image")
    parser.add_argument("--vit-size", type=int, default=448)
    parser.add_argument("--vit-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    extractor = create_extractor("synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        world = SyntheticWorldConfig(image_size=args.size, num_train=args.samples, num_test=0, seed=args.seed)
        root = generate_world(Path(tmp) / "world", world)
        records = read_split(root, "train")[: args.samples]
        reals = torch.stack([_load(root, record.real) for record in records])  # [N, 3, S, S]
        masks = [torch.from_numpy(load_mask(root / record.mask))[None].float() for record in records]
        composites = torch.stack([_load(root, record.composite) for record in records])
    with torch.no_grad():
        cached = extractor(reals).permute(0, 3, 1, 2)  # [N, C, h, w]: what the feature store holds
        composite_grids = extractor(composites).permute(0, 3, 1, 2)
    augmented, boxes = [], []
    for index, (real, mask) in enumerate(zip(reals, masks, strict=True)):
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + index)
        image, box = augmented_reference(real, mask, generator)
        augmented.append(image)
        boxes.append(box)
    start = time.perf_counter()
    cropped = torch.stack([apply_crop_box(grid, box) for grid, box in zip(cached, boxes, strict=True)])
    crop_ms = (time.perf_counter() - start) / len(boxes) * 1000
    start = time.perf_counter()
    with torch.no_grad():
        recomputed = torch.cat([extractor(image[None]) for image in augmented]).permute(0, 3, 1, 2)
    recompute_ms = (time.perf_counter() - start) / len(boxes) * 1000

    a = F.normalize(cropped.flatten(2), dim=1)  # [N, C, L]
    b = F.normalize(recomputed.flatten(2), dim=1)
    both = (cropped.flatten(2).norm(dim=1) > 1e-6) & (recomputed.flatten(2).norm(dim=1) > 1e-6)  # [N, L]
    cosine = (a * b).sum(dim=1)[both]
    # SGF view: for each foreground cell of the composite, its best-matching reference cell
    best_crop, best_recomputed = [], []
    query = F.normalize(composite_grids.flatten(2), dim=1)  # [N, C, L]
    for index, mask in enumerate(masks):
        cells = F.adaptive_max_pool2d(mask[None], cached.shape[-2:]).flatten() > 0  # [L]
        fg = query[index][:, cells & (query[index].norm(dim=0) > 1e-6)]  # [C, f]
        if fg.shape[1] == 0:
            continue
        best_crop += (fg.T @ a[index]).amax(dim=1).tolist()  # [f]
        best_recomputed += (fg.T @ b[index]).amax(dim=1).tolist()
    result = {
        "benchmark": "augmented_grid",
        "samples": len(boxes),
        "image_size": args.size,
        "grid": list(cached.shape[-2:]),
        "extractor": "synthetic",
        "crop_ms_per_sample": round(crop_ms, 4),
        "recompute_ms_per_sample": round(recompute_ms, 3),
        "recompute_over_crop": round(recompute_ms / max(crop_ms, 1e-9), 1),
        "cells_nonzero_in_both": int(both.sum()),
        "mean_cosine": round(float(cosine.mean()), 4),
        "share_cosine_ge_eps_c": round(float((cosine >= EPS_C).float().mean()), 4),
        "fg_best_match_cosine": {"crop": round(float(np.mean(best_crop)), 4),
                                 "recompute": round(float(np.mean(best_recomputed)), 4),
                                 "foreground_cells": len(best_crop)},
        "torch_threads": torch.get_num_threads(),
    }
    if args.vit:
        vit_ms = _time_vit(args.vit, args.vit_size, args.vit_repeats)
        result["vit"] = {"name": args.vit, "input_size": args.vit_size, "ms_per_image": round(vit_ms, 1),
                         "recompute_over_crop": round(vit_ms / max(crop_ms, 1e-9), 1)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

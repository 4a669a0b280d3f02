"""Composite stores compressed like the gallery: what it does to the lists and the SGF grids.

Prints ONE JSON line. On a generated synthetic world the retrieval job runs once per
``composite_compression`` (``fp16``, the baseline, then each of ``--methods``), each in its
own cache, with the same gallery store (``--gallery`` compression) and rule. Reported per
method, against fp16:

- ``bytes_per_composite`` and its ratio to fp16;
- the lists: share of composites (train + test) whose list is identical, mean Jaccard of
  the reference sets, share whose first reference is the same, and the mean number of
  references;
- the SGF grids: cosine of each composite cell's grid vector (read back through the
  store's basis, as training reads it) to the fp16 grid: mean, 1st percentile, minimum;
- seconds of the retrieval job.

The extractor is the weight-free ``synthetic`` one (192 dims a cell at 8 x 8 cells for 64 px),
so ``pca_int8`` (k = 128) projects and quantises as it does the DVT's 768 dims.

Usage: python benchmarks/composite_compression.py [--train 400] [--test 120] [--size 64]
    [--methods pca_int8 pca_int8:64] [--gallery fp16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.io.reference_lists import read_reference_list
from raiha.retrieval.pipeline import ReferencePipelineOutputs, build_reference_lists
from raiha.retrieval.settings import RetrievalSettings
from raiha.world import SyntheticWorldConfig, generate_world

SPLITS = ("train", "test")


def _run(world: Path, cache: Path, settings: RetrievalSettings) -> tuple[ReferencePipelineOutputs, float]:
    start = time.perf_counter()
    outputs = build_reference_lists(world, cache, settings, splits=SPLITS, progress=False)
    return outputs, time.perf_counter() - start


def _lists(outputs: ReferencePipelineOutputs) -> list[list[str]]:
    return [entry.refs for split in SPLITS for entry in read_reference_list(outputs.lists[split])]


def _list_agreement(baseline: list[list[str]], other: list[list[str]]) -> dict[str, float]:
    same = sum(a == b for a, b in zip(baseline, other))
    jaccard = [len(set(a) & set(b)) / len(set(a) | set(b)) if a or b else 1.0 for a, b in zip(baseline, other)]
    first = sum((a[:1] == b[:1]) for a, b in zip(baseline, other))
    count = len(baseline)
    return {
        "identical_lists": round(same / count, 4),
        "mean_jaccard": round(sum(jaccard) / count, 4),
        "same_first_ref": round(first / count, 4),
        "mean_refs": round(sum(map(len, other)) / count, 3),
    }


def _grid_cosines(baseline: ReferencePipelineOutputs, other: ReferencePipelineOutputs) -> dict[str, float]:
    """Cosines over the cells whose fp16 vector is non-zero (the synthetic extractor zeroes
    cells without evidence), plain and weighted by the fp16 vector's norm."""
    reference = SemanticGridLookup(baseline.composite_stores.values())
    compressed = SemanticGridLookup(other.composite_stores.values())
    cosines, norms = [], []
    for store in baseline.composite_stores.values():
        for path in store.image_paths:
            exact, approx = reference.grid(path).flatten(1), compressed.grid(path).flatten(1)  # [C, h*w]
            cosines.append(F.cosine_similarity(exact, approx, dim=0))  # [h*w]
            norms.append(exact.norm(dim=0))  # [h*w]
    values, weights = torch.cat(cosines), torch.cat(norms)
    nonzero = weights > 1e-6
    values, weights = values[nonzero], weights[nonzero]
    return {
        "grid_cells": int(values.numel()),
        "grid_cosine_mean": round(values.mean().item(), 5),
        "grid_cosine_norm_weighted": round(((values * weights).sum() / weights.sum()).item(), 5),
        "grid_cells_cosine_ge_0.9": round((values >= 0.9).float().mean().item(), 4),
        "grid_cosine_p01": round(values.quantile(0.01).item(), 5),
        "channels": int(compressed.channels),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--methods", nargs="+", default=["pca_int8", "pca_int8:64"])
    parser.add_argument("--gallery", default="fp16")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = SyntheticWorldConfig(image_size=args.size, num_train=args.train, num_test=args.test)
    result: dict[str, Any] = {"benchmark": "composite_compression", "device": args.device,
                              "world": {"size": args.size, "train": args.train, "test": args.test},
                              "gallery_compression": args.gallery}
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(Path(tmp) / "world", config)
        common = {"image_size": args.size, "device": args.device, "compression": args.gallery}
        baseline, seconds = _run(world, Path(tmp) / "fp16", RetrievalSettings(composite_compression="fp16", **common))
        base_bytes = next(iter(baseline.composite_stores.values())).bytes_per_image
        result["fp16"] = {"bytes_per_composite": base_bytes, "seconds": round(seconds, 2),
                          "mean_refs": _list_agreement(_lists(baseline), _lists(baseline))["mean_refs"]}
        for method in args.methods:
            settings = RetrievalSettings(composite_compression=method, **common)
            outputs, seconds = _run(world, Path(tmp) / method.replace(":", "_"), settings)
            stored = next(iter(outputs.composite_stores.values())).bytes_per_image
            result[method] = {
                "bytes_per_composite": stored, "bytes_ratio_vs_fp16": round(stored / base_bytes, 4),
                **_list_agreement(_lists(baseline), _lists(outputs)),
                **_grid_cosines(baseline, outputs), "seconds": round(seconds, 2),
            }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

"""Sweeps reuse scores: seconds of a second rule with and without the cached scores.

Prints ONE JSON line. On a generated synthetic world the retrieval job runs the paper's rule
(``c0.7_a0.9``: it searches and caches each split's scores), then the illumination ablation
``eps_a_range=[0.7, 0.8]`` twice: from the cached scores (``second_cached_s``), and from the
same stores with the cached scores deleted (``second_search_s``, the baseline: what every
rule cost before). ``identical`` says whether both wrote the same bytes; ``speedup`` is
``second_search_s / second_cached_s``.

Usage: python benchmarks/score_cache.py [--train 480] [--test 120] [--size 64]
    [--search prefilter] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from raiha.retrieval.pipeline import ReferencePipelineOutputs, build_reference_lists
from raiha.retrieval.settings import RetrievalSettings
from raiha.world import SyntheticWorldConfig, generate_world

SPLITS = ("train", "test")


def _timed(world: Path, cache: Path, settings: RetrievalSettings) -> tuple[ReferencePipelineOutputs, float]:
    start = time.perf_counter()
    outputs = build_reference_lists(world, cache, settings, splits=SPLITS, progress=False)
    return outputs, round(time.perf_counter() - start, 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--search", default="prefilter")
    parser.add_argument("--device", default="cpu", help="search_device of the batched search")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = generate_world(
            work / "world", SyntheticWorldConfig(image_size=args.size, num_train=args.train, num_test=args.test)
        )
        base = {"image_size": args.size, "search": args.search, "search_device": args.device}
        first, first_s = _timed(world, work / "cache", RetrievalSettings(**base))
        ablation = RetrievalSettings(**base, eps_a_range=(0.7, 0.8))
        baseline_cache = work / "baseline"
        shutil.copytree(work / "cache", baseline_cache)
        for scores in baseline_cache.glob("retrieval/*/lists/scores-*"):
            scores.unlink()
        shutil.rmtree(next(baseline_cache.glob("retrieval/*/lists")) / first.lists_dir.name)
        cached, cached_s = _timed(world, work / "cache", ablation)
        searched, search_s = _timed(world, baseline_cache, ablation)
        identical = all(cached.lists[s].read_bytes() == searched.lists[s].read_bytes() for s in SPLITS)
        result = {
            "benchmark": "score_cache", "world": [args.train, args.test, args.size],
            "search": args.search, "device": args.device, "threads": args.threads,
            "first_rule_s": first_s, "second_cached_s": cached_s, "second_search_s": search_s,
            "speedup": round(search_s / max(cached_s, 1e-9), 1), "identical": identical,
            "cached_reused": cached.summary["scores_reused"],
            "search_reused": searched.summary["scores_reused"],
            "refs": {s: cached.summary["splits"][s]["refs"] for s in SPLITS},
        }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["identical"] else 1)

"""Peak memory of scoring one full-size image: row blocks vs the whole image in one block.

Scores a synthetic ``--width x --height`` prediction (default 6048 x 4032, the largest
HAdobe5k size) under every protocol, once with :func:`raiha.metrics.per_image.score_levels`'
row blocks (512 rows, what ``raiha.score`` / full-resolution ``raiha.eval`` use) and once
as a single block (the baseline), each in a fresh process so ``ru_maxrss`` is its own.
Prints ONE JSON line: peak resident MB and seconds of each, and their ratios.

Usage: python benchmarks/score_memory.py [--width 6048] [--height 4032] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import torch
from raiha.metrics.per_image import score_levels
from raiha.metrics.protocols import PROTOCOLS
width, height, block, device = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
generator = torch.Generator().manual_seed(0)
pred = torch.randint(0, 256, (1, 3, height, width), generator=generator, dtype=torch.uint8).to(device)
real = torch.randint(0, 256, (1, 3, height, width), generator=generator, dtype=torch.uint8).to(device)
mask = (torch.rand((1, 1, height, width), generator=generator) > 0.7).float().to(device)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
for name in PROTOCOLS:
    score_levels(pred, real, mask, name, block_rows=block)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": peak / 1024, "scoring_mb": (peak - before) / 1024, "seconds": seconds}))
"""


def _run(width: int, height: int, block: int, device: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(width), str(height), str(block), device],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=6048)
    parser.add_argument("--height", type=int, default=4032)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    blocked = _run(args.width, args.height, 512, args.device)
    whole = _run(args.width, args.height, args.height, args.device)
    print(json.dumps({
        "benchmark": "score_memory", "device": args.device, "image": f"{args.width}x{args.height}",
        "blocked_512_rows": blocked, "whole_image_baseline": whole,
        "scoring_memory_ratio_blocked_over_whole": blocked["scoring_mb"] / max(whole["scoring_mb"], 1e-9),
        "time_ratio_blocked_over_whole": blocked["seconds"] / whole["seconds"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()

"""Training-step throughput of full Raiha (reference + SGF) against the authors' kind of step.

Prints ONE JSON line. Every variant runs in its own subprocess (clean peak memory):
- ``authors``: fp32, the frozen ViT (DINOv2 ViT-B/14 + DVT denoiser, random weights)
  recomputed at 448 px for the composite and the reference on every step, as the
  authors' model file does;
- ``cached_unfused``: the same generator (the authors' unfused RAIN and attention) and
  batch, semantic grids read from an fp16 feature store (a memory-mapped file, as
  ``raiha.retrieval.store.feature_store`` keeps them): what caching alone buys;
- ``cached``: plus raiha's fused RAIN and attention kernels (``model.fused_kernels``);
- ``cached+channels_last``, ``cached+bf16`` (autocast), ``cached+bf16+channels_last``.
The ratio ``speedup_vs_authors`` of each variant is its images/s over ``authors``'s,
measured in the same run.

Usage: python benchmarks/train_step.py [--size 256] [--batch 4] [--width 32] [--steps 2]
       [--quick-size 64] [--quick-width 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

VARIANTS = ("authors", "cached_unfused", "cached", "cached+channels_last", "cached+bf16", "cached+bf16+channels_last")
VIT_NAME = "vit_base_patch14_reg4_dinov2"
SEMANTIC_DIM = 768


def _vit_and_denoiser(input_size: int):
    import timm

    from raiha.retrieval.features.dvt_denoiser import DvtDenoiser

    vit = timm.create_model(VIT_NAME, pretrained=False, img_size=input_size, num_classes=0).eval()
    denoiser = DvtDenoiser(feature_dim=SEMANTIC_DIM).eval()
    return vit, denoiser


def _recompute_grid(vit, denoiser, images: torch.Tensor, input_size: int, grid: int) -> torch.Tensor:
    """The authors' way: ViT + denoiser on every step. Returns ``[B, 768, grid, grid]``."""
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(images, size=(input_size, input_size), mode="bilinear")
        tokens = vit.forward_features(resized)[:, vit.num_prefix_tokens :]  # [B, N, C]
        side = int(tokens.shape[1] ** 0.5)
        tokens = denoiser(tokens.reshape(-1, side, side, SEMANTIC_DIM))  # [B, side, side, C]
        tokens = tokens.permute(0, 3, 1, 2)  # [B, C, side, side]
        return torch.nn.functional.interpolate(tokens, size=(grid, grid), mode="bilinear")


def run_variant(variant: str, size: int, batch: int, width: int, steps: int) -> dict:
    """Time ``steps`` training steps (after one warm-up) of one variant in this process."""
    from raiha.models.harmonizer_output import paste_foreground
    from raiha.models.reference_input import harmonize
    from raiha.models.registry import create_harmonizer
    from raiha.models.speed_options import set_fused_kernels
    from raiha.training.loss import foreground_normalized_mse

    torch.manual_seed(0)
    grid = size // 8
    net = create_harmonizer("rhnet", base_width=width, semantic_channels=SEMANTIC_DIM, attention="sgf")
    set_fused_kernels(net, variant not in ("authors", "cached_unfused"))
    channels_last = "channels_last" in variant
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in variant else nullcontext()
    composite = torch.rand(batch, 3, size, size) * 2 - 1
    reference = torch.rand(batch, 3, size, size) * 2 - 1
    real = torch.rand(batch, 3, size, size) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    if channels_last:
        composite, reference, real = (t.contiguous(memory_format=torch.channels_last) for t in (composite, reference, real))
    if variant == "authors":
        vit, denoiser = _vit_and_denoiser(448)
    else:
        store_file = Path(tempfile.mkdtemp()) / "content.npy"
        store = np.lib.format.open_memmap(store_file, mode="w+", dtype=np.float16, shape=(64, grid * grid, SEMANTIC_DIM))
        store[:] = np.random.default_rng(0).standard_normal(store.shape).astype(np.float16)
        store.flush()
        store = np.load(store_file, mmap_mode="r")

    def semantic_grids(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if variant == "authors":
            return (_recompute_grid(vit, denoiser, composite, 448, grid),
                    _recompute_grid(vit, denoiser, reference, 448, grid))
        rows = [(step * 2 * batch + k) % 64 for k in range(2 * batch)]
        cells = torch.from_numpy(np.ascontiguousarray(store[sorted(rows)])).float()  # [2B, grid*grid, C]
        cells = cells.transpose(1, 2).reshape(2 * batch, SEMANTIC_DIM, grid, grid)  # [2B, C, grid, grid]
        return cells[:batch], cells[batch:]

    def step(index: int) -> None:
        semantic, reference_semantic = semantic_grids(index)
        with autocast:
            output = harmonize(net, composite, mask, reference=reference, semantic=semantic,
                               reference_semantic=reference_semantic)
            pasted = paste_foreground(output.image.float(), composite, mask)
            loss = foreground_normalized_mse(pasted, real, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(0)  # warm-up
    start = time.perf_counter()
    for index in range(1, steps + 1):
        step(index)
    seconds = (time.perf_counter() - start) / steps
    return {
        "variant": variant,
        "seconds_per_step": round(seconds, 3),
        "images_per_s": round(batch / seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _in_subprocess(variant: str, size: int, batch: int, width: int, steps: int) -> dict:
    command = [sys.executable, __file__, "--one", variant, "--size", str(size), "--batch", str(batch),
               "--width", str(width), "--steps", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(size: int, batch: int, width: int, steps: int) -> dict:
    rows = {variant: _in_subprocess(variant, size, batch, width, steps) for variant in VARIANTS}
    baseline = rows["authors"]["images_per_s"]
    for row in rows.values():
        row["speedup_vs_authors"] = round(row["images_per_s"] / baseline, 2)
    return {"size": f"{size}x{size} (+ reference: {size}x{2 * size})", "batch": batch, "base_width": width,
            "variants": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--quick-size", type=int, default=64)
    parser.add_argument("--quick-width", type=int, default=8)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args.size, args.batch, args.width, args.steps)))
        return
    report = {
        "benchmark": "train_step",
        "generator": "rhnet (authors' layout), SGF, reference concatenated to the right",
        "vit": f"{VIT_NAME} + DVT denoiser at 448 px (random weights), fp32, no grad",
        "torch_threads": torch.get_num_threads(),
        "full": measure(args.size, args.batch, args.width, args.steps),
        "quick": measure(args.quick_size, args.batch, args.quick_width, args.steps),
    }
    best = max(report["full"]["variants"].values(), key=lambda row: row["images_per_s"])
    report["best_full_variant"] = best["variant"]
    report["best_full_speedup_vs_authors"] = best["speedup_vs_authors"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

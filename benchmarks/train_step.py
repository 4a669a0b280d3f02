"""Training-step throughput of full Raiha (reference + SGF) against the authors' kind of step.

Prints ONE JSON line. Every variant runs in its own subprocess (clean peak memory), on
``--device cpu|cuda`` (default: cuda when available):
- ``authors``: fp32, the frozen ViT (DINOv2 ViT-B/14 + DVT denoiser, random weights)
  recomputed at 448 px for the composite and the reference on every step, as the
  authors' model file does; ``authors+bf16``: the same under bf16 autocast;
- ``cached_unfused``: the same generator (the authors' unfused RAIN and attention) and
  batch, semantic grids read from an fp16 feature store (a memory-mapped file, as
  ``raiha.retrieval.store.feature_store`` keeps them): what caching alone buys;
- ``cached``: plus raiha's fused RAIN and attention kernels (``model.fused_kernels``);
- ``cached+channels_last``, ``cached+bf16`` (autocast), ``cached+bf16+channels_last``;
- ``cached+compile``, ``cached+bf16+compile``: ``torch.compile`` of the generator
  (``model.compile``), compile time excluded (it happens in the warm-up steps).
bf16 variants run only where the device computes bf16 natively (``raiha.utils.precision``:
a GPU with bf16 tensor cores, a CPU with avx512_bf16 or AMX); elsewhere they are listed
under ``skipped`` with the reason (``--force-bf16`` runs them anyway). Timing excludes
``--warmup`` steps and synchronises the device; ``peak_device_mb`` is the peak allocated
CUDA memory (CPU: peak RSS). ``speedup_vs_authors`` and ``speedup_vs_authors_bf16`` are
each variant's images/s over those baselines', measured in the same run.

Usage: python benchmarks/train_step.py [--device cuda] [--size 256] [--batch 48] [--width 32]
       [--steps 20] [--warmup 3] [--variants cached cached+bf16+compile ...] [--quick-size 64]
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

VARIANTS = (
    "authors", "authors+bf16", "cached_unfused", "cached", "cached+channels_last", "cached+bf16",
    "cached+bf16+channels_last", "cached+compile", "cached+bf16+compile",
)  # fmt: skip
VIT_NAME = "vit_base_patch14_reg4_dinov2"
SEMANTIC_DIM = 768
STORE_ROWS = 64


def _vit_and_denoiser(input_size: int, device: torch.device):
    import timm

    from raiha.retrieval.features.dvt_denoiser import DvtDenoiser

    vit = timm.create_model(VIT_NAME, pretrained=False, img_size=input_size, num_classes=0).eval()
    denoiser = DvtDenoiser(feature_dim=SEMANTIC_DIM).eval()
    return vit.to(device), denoiser.to(device)


def _recompute_grid(
    vit, denoiser, images: torch.Tensor, input_size: int, grid: int
) -> torch.Tensor:
    """The authors' way: ViT + denoiser on every step. Returns ``[B, 768, grid, grid]``."""
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(
            images, size=(input_size, input_size), mode="bilinear"
        )
        tokens = vit.forward_features(resized)[:, vit.num_prefix_tokens :]  # [B, N, C]
        side = int(tokens.shape[1] ** 0.5)
        tokens = denoiser(tokens.reshape(-1, side, side, SEMANTIC_DIM))  # [B, side, side, C]
        tokens = tokens.permute(0, 3, 1, 2)  # [B, C, side, side]
        return torch.nn.functional.interpolate(tokens.float(), size=(grid, grid), mode="bilinear")


def _feature_store(grid: int):
    """A memory-mapped fp16 store of ``STORE_ROWS`` grids ``[rows, grid*grid, 768]``."""
    store_file = Path(tempfile.mkdtemp()) / "content.npy"
    store = np.lib.format.open_memmap(
        store_file, mode="w+", dtype=np.float16, shape=(STORE_ROWS, grid * grid, SEMANTIC_DIM)
    )
    store[:] = np.random.default_rng(0).standard_normal(store.shape).astype(np.float16)
    store.flush()
    return np.load(store_file, mmap_mode="r")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(
    size: int, batch: int, device: torch.device, channels_last: bool
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        name: torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
        for name in ("composite", "reference", "real")
    }
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    tensors["mask"] = mask
    format_ = torch.channels_last if channels_last else torch.contiguous_format
    return {
        name: value.to(device).contiguous(memory_format=format_) for name, value in tensors.items()
    }


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps (after ``args.warmup`` warm-up steps) of one variant here."""
    from raiha.models.harmonizer_output import paste_foreground
    from raiha.models.reference_input import harmonize
    from raiha.models.registry import create_harmonizer
    from raiha.models.speed_options import set_fused_kernels
    from raiha.training.loss import foreground_normalized_mse

    device = torch.device(args.device)
    torch.manual_seed(0)
    size, batch_size, grid = args.size, args.batch, args.size // 8
    net = create_harmonizer(
        "rhnet", base_width=args.width, semantic_channels=SEMANTIC_DIM, attention="sgf"
    ).to(device)
    set_fused_kernels(net, not variant.startswith(("authors", "cached_unfused")))
    channels_last = "channels_last" in variant
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if "compile" in variant:
        net.compile()  # in place, as model.compile does
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if "bf16" in variant else nullcontext()
    )
    batch = _batch(size, batch_size, device, channels_last)
    authors = variant.startswith("authors")
    vit, denoiser = _vit_and_denoiser(448, device) if authors else (None, None)
    store = None if authors else _feature_store(grid)

    def semantic_grids(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if authors:
            with autocast:
                return (_recompute_grid(vit, denoiser, batch["composite"], 448, grid),
                        _recompute_grid(vit, denoiser, batch["reference"], 448, grid))  # fmt: skip
        rows = sorted((step * 2 * batch_size + k) % STORE_ROWS for k in range(2 * batch_size))
        cells = torch.from_numpy(np.ascontiguousarray(store[rows]))  # [2B, grid*grid, C] fp16
        if device.type == "cuda":
            cells = cells.pin_memory().to(device, non_blocking=True)
        cells = (
            cells.float().transpose(1, 2).reshape(2 * batch_size, SEMANTIC_DIM, grid, grid)
        )  # [2B, C, g, g]
        return cells[:batch_size], cells[batch_size:]

    def step(index: int) -> None:
        semantic, reference_semantic = semantic_grids(index)
        with autocast:
            output = harmonize(net, batch["composite"], batch["mask"], reference=batch["reference"],
                               semantic=semantic, reference_semantic=reference_semantic)  # fmt: skip
            pasted = paste_foreground(output.image.float(), batch["composite"], batch["mask"])
            loss = foreground_normalized_mse(pasted, batch["real"], batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for index in range(args.warmup):
        step(index)
    _synchronize(device)
    warmup_seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for index in range(args.warmup, args.warmup + args.steps):
        step(index)
    _synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    row = {
        "variant": variant,
        "seconds_per_step": round(seconds, 4),
        "images_per_s": round(batch_size / seconds, 3),
        "warmup_s": round(warmup_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        row["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return row


def _in_subprocess(variant: str, args: argparse.Namespace, size: int, width: int) -> dict:
    command = [sys.executable, __file__, "--one", variant, "--device", args.device, "--size", str(size),
               "--batch", str(args.batch), "--width", str(width), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    if result.returncode != 0:
        return {"variant": variant, "error": result.stderr.strip()[-1500:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, variants: list[str], size: int, width: int) -> dict:
    """Every variant at ``size`` px and base width ``width``, with the ratios to both baselines."""
    rows = {variant: _in_subprocess(variant, args, size, width) for variant in variants}
    for baseline in ("authors", "authors+bf16"):
        rate = rows.get(baseline, {}).get("images_per_s")
        for row in rows.values():
            if rate and "images_per_s" in row:
                row[f"speedup_vs_{baseline.replace('+', '_')}"] = round(
                    row["images_per_s"] / rate, 2
                )
    return {"size": f"{size}x{size} (+ reference: {size}x{2 * size})", "batch": args.batch, "base_width": width,
            "variants": rows}  # fmt: skip


def _chosen_variants(args: argparse.Namespace) -> tuple[list[str], dict[str, str], dict]:
    """The variants to run, those skipped (with why) and the device's bf16 report."""
    from raiha.utils.precision import bf16_support

    native, reason = bf16_support(args.device)
    requested = list(args.variants or VARIANTS)
    skipped = {}
    if not native and not args.force_bf16:
        skipped = {
            name: f"bf16 not native: {reason} (--force-bf16 runs it)"
            for name in requested
            if "bf16" in name
        }
    variants = [name for name in requested if name not in skipped]
    return variants, skipped, {"bf16_native": native, "reason": reason,
                               "chosen_precision": "bf16-mixed" if native else "32-true"}  # fmt: skip


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--batch", type=int, default=None, help="default: 48 on cuda (the paper's), 4 on cpu"
    )
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default: 20 on cuda, 2 on cpu)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default: 3 on cuda, 1 on cpu)"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None)
    parser.add_argument(
        "--force-bf16", action="store_true", help="run bf16 variants without native bf16"
    )
    parser.add_argument(
        "--quick-size",
        type=int,
        default=None,
        help="also at this size (default: 64 on cpu, none on cuda)",
    )
    parser.add_argument("--quick-width", type=int, default=8)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    args.batch = args.batch or (48 if cuda else 4)
    args.steps = args.steps or (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.quick_size = args.quick_size if args.quick_size is not None else (0 if cuda else 64)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return
    variants, skipped, precision = _chosen_variants(args)
    report = {
        "benchmark": "train_step",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "generator": "rhnet (authors' layout), SGF, reference concatenated to the right",
        "vit": f"{VIT_NAME} + DVT denoiser at 448 px (random weights), no grad",
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps, "warmup_steps": args.warmup,
        "precision": precision,
        "skipped": skipped,
        "full": measure(args, variants, args.size, args.width),
    }  # fmt: skip
    if args.quick_size:
        report["quick"] = measure(args, variants, args.quick_size, args.quick_width)
    measured = [row for row in report["full"]["variants"].values() if "images_per_s" in row]
    if measured:
        best = max(measured, key=lambda row: row["images_per_s"])
        report["best_full_variant"] = best["variant"]
        for key in ("speedup_vs_authors", "speedup_vs_authors_bf16"):
            if key in best:
                report[f"best_full_{key}"] = best[key]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

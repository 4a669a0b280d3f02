"""bf16 vs fp32 feature extraction: speed, and what bf16 does to the grids and the lists.

Prints ONE JSON line. On a generated synthetic world (``--train``/``--test`` composites at
``--size`` px; the default world is 1600/400) the retrieval job runs twice, with
``extraction_precision`` fp32 (the baseline) and bf16, each in its own cache, with the same
rule, fp16 stores and exact search. Reported:

- ``speed``: images per second of the extraction path (:func:`extract_features`: the
  extractor under autocast plus the HSV histograms) and of the extractor's forward alone,
  fp32 and bf16 on ``--device``, and their ratio (bf16 / fp32);
- ``lists``: share of composites (train + test) whose reference list is identical (same
  references in the same order), whose reference set is identical, mean Jaccard of the
  reference sets, share with the same first reference, mean references (rule: ``eps_c``
  0.7, ``eps_a`` 0.9, at most ``--max-refs``);
- ``fp32_twin`` (``--twin-batch-size B``): the same for a second fp32 run extracting ``B``
  images a batch, the noise floor of the lists (fp32 matmuls of another shape round
  differently; with ties in the scores, that alone reorders lists);
- ``grids``: cosine of each composite cell's content vector, bf16 against fp32 (cells that
  are zero in both are left out; the synthetic extractor zeroes cells without evidence).

``--extractor dvt`` is ViT-B/14-reg4 + the DVT denoiser at ``--dvt-size`` px (grid
``dvt-size / 14``), with seeded random weights (nothing here downloads; the same in both
runs) unless ``--weights`` and ``--denoiser`` name the real ones; ``synthetic`` is the
weight-free extractor of the synthetic world. A CPU without ``avx512_bf16``/``amx_bf16``
emulates bf16, so its speed says nothing about GPUs (``bf16_native`` in the JSON); the
agreement is what a CPU run measures.

Usage: python benchmarks/extraction_precision.py --device cpu|cuda [--extractor dvt|synthetic]
    [--dvt-size 112] [--train 120] [--test 40] [--size 64] [--max-refs 20]
    [--speed-images 16] [--batch-size 8] [--twin-batch-size 3]
    [--weights vit_b14_reg4.safetensors --denoiser vit_base_patch14_reg4_dinov2.lvd142m.pth]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # seeded random weights, never a download

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from raiha.io.reference_lists import read_reference_list  # noqa: E402
from raiha.io.split_lists import read_split  # noqa: E402
from raiha.retrieval.features.registry import create_extractor  # noqa: E402
from raiha.retrieval.pipeline import ReferencePipelineOutputs, build_reference_lists  # noqa: E402
from raiha.retrieval.settings import RetrievalSettings  # noqa: E402
from raiha.retrieval.store.extraction import extract_features, load_gallery_image  # noqa: E402
from raiha.utils.precision import bf16_support  # noqa: E402
from raiha.world import SyntheticWorldConfig, generate_world  # noqa: E402

SPLITS = ("train", "test")
PRECISIONS = ("fp32", "bf16")


def extractor_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The RetrievalSettings fields of the chosen extractor."""
    if args.extractor == "synthetic":
        return {"extractor": "synthetic", "image_size": args.size}
    real = bool(args.weights and args.denoiser)
    kwargs = {
        "model_name": "vit_base_patch14_reg4_dinov2.lvd142m", "input_size": args.dvt_size,
        "pretrained": True, "pretrained_file": args.weights, "allow_random_weights": not real,
        "denoiser_checkpoint": args.denoiser,
    }  # fmt: skip
    return {
        "extractor": "dvt", "extractor_kwargs": kwargs, "feature_dim": 768,
        "image_size": args.dvt_size,
    }  # fmt: skip


def weights_name(args: argparse.Namespace) -> str:
    """How the JSON names the extractor's weights."""
    if args.extractor == "synthetic":
        return "weight-free"
    return (
        f"{args.weights} + {args.denoiser}" if args.weights and args.denoiser else "seeded random"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_speed(
    settings: RetrievalSettings, images: torch.Tensor, batch_size: int
) -> dict[str, Any]:
    """Images per second of the extraction path and of the forward, fp32 and bf16."""
    device = torch.device(settings.device)
    extractor = create_extractor(settings.extractor, **dict(settings.extractor_kwargs)).to(device)
    batches = images.split(batch_size)  # each [b, 3, S, S]
    result: dict[str, Any] = {"images": int(images.shape[0]), "batch_size": batch_size}
    for precision in PRECISIONS:
        extract_features(batches[0], extractor, settings.hsv, device, precision)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            extract_features(batch, extractor, settings.hsv, device, precision)
        path_seconds = time.perf_counter() - start
        on_device = [batch.to(device) for batch in batches]
        _sync(device)
        start = time.perf_counter()
        for batch in on_device:
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                extractor(batch)  # [b, h, w, C]
        _sync(device)
        forward_seconds = time.perf_counter() - start
        result[f"{precision}_images_per_s"] = round(images.shape[0] / path_seconds, 2)
        result[f"{precision}_forward_images_per_s"] = round(images.shape[0] / forward_seconds, 2)
    result["ratio_bf16_vs_fp32"] = round(
        result["bf16_images_per_s"] / result["fp32_images_per_s"], 3
    )
    result["forward_ratio_bf16_vs_fp32"] = round(
        result["bf16_forward_images_per_s"] / result["fp32_forward_images_per_s"], 3
    )
    return result


def _lists(outputs: ReferencePipelineOutputs) -> list[list[str]]:
    return [entry.refs for split in SPLITS for entry in read_reference_list(outputs.lists[split])]


def list_agreement(
    baseline: list[list[str]], other: list[list[str]], name: str = "bf16"
) -> dict[str, Any]:
    """Identical lists, mean Jaccard of the sets, same first reference, references per list."""
    pairs = list(zip(baseline, other, strict=True))
    jaccard = [len(set(a) & set(b)) / len(set(a) | set(b)) if a or b else 1.0 for a, b in pairs]
    count = len(pairs)
    return {
        "composites": count,
        "identical_lists": round(sum(a == b for a, b in pairs) / count, 4),
        "identical_sets": round(sum(set(a) == set(b) for a, b in pairs) / count, 4),
        "mean_jaccard": round(sum(jaccard) / count, 4),
        "same_first_ref": round(sum(a[:1] == b[:1] for a, b in pairs) / count, 4),
        "fp32_mean_refs": round(sum(map(len, baseline)) / count, 3),
        f"{name}_mean_refs": round(sum(map(len, other)) / count, 3),
        "fp32_empty_lists": round(sum(not a for a in baseline) / count, 4),
    }


def grid_cosines(
    baseline: ReferencePipelineOutputs, other: ReferencePipelineOutputs
) -> dict[str, Any]:
    """Cosine of each composite cell's content, bf16 against fp32 (cells zero in both left out)."""
    cosines = []
    for split, store in baseline.composite_stores.items():
        twin = other.composite_stores[split]
        assert store.image_paths == twin.image_paths
        for index in range(len(store)):
            exact, approx = store.content(index).float(), twin.content(index).float()  # [L, C]
            live = (exact.norm(dim=-1) > 1e-6) | (approx.norm(dim=-1) > 1e-6)  # [L]
            cosines.append(F.cosine_similarity(exact[live], approx[live], dim=-1))
    values = torch.cat(cosines)
    return {
        "cells": int(values.numel()),
        "cosine_mean": round(values.mean().item(), 5),
        "cosine_p01": round(values.quantile(0.01).item(), 5),
        "cosine_min": round(values.min().item(), 5),
        "cells_cosine_ge_0.99": round((values >= 0.99).float().mean().item(), 4),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, with the device-dependent defaults filled in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--device", default="cpu")
    add("--extractor", choices=("dvt", "synthetic"), default="dvt")
    add("--dvt-size", type=int, default=None, help="default 448 on cuda, 112 on cpu")
    add("--train", type=int, default=120)
    add("--test", type=int, default=40)
    add("--size", type=int, default=64)
    add("--max-refs", type=int, default=20, help="20: synthetic.yaml; 4: dvt.yaml")
    add("--weights", default=None, help="DINOv2 ViT-B/14-reg4 weights file (with --denoiser)")
    add("--denoiser", default=None, help="its DVT denoiser .pth (both: no random weights)")
    add("--twin-batch-size", type=int, default=None, help="also an fp32 run at this batch size")
    add("--speed-images", type=int, default=None, help="default 512 on cuda, 16 on cpu")
    add("--batch-size", type=int, default=None, help="default 32 on cuda, 8 on cpu")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.dvt_size = args.dvt_size or (448 if cuda else 112)
    args.speed_images = args.speed_images or (512 if cuda else 16)
    args.batch_size = args.batch_size or (32 if cuda else 8)
    return args


def compare_lists(
    world: Path, cache: Path, common: dict[str, Any], twin_batch: int | None
) -> dict[str, Any]:
    """The retrieval job in fp32 and bf16 (and an fp32 twin): list and grid agreement."""
    outputs, seconds = {}, {}
    for precision in PRECISIONS:
        settings = RetrievalSettings(extraction_precision=precision, **common)
        start = time.perf_counter()
        outputs[precision] = build_reference_lists(
            world, cache / precision, settings, splits=SPLITS, progress=False
        )
        seconds[precision] = round(time.perf_counter() - start, 1)
    result: dict[str, Any] = {
        "lists": list_agreement(_lists(outputs["fp32"]), _lists(outputs["bf16"])),
        "grids": grid_cosines(outputs["fp32"], outputs["bf16"]),
    }
    if twin_batch:
        settings = RetrievalSettings(**{**common, "batch_size": twin_batch})
        twin = build_reference_lists(world, cache / "twin", settings, splits=SPLITS, progress=False)
        result["fp32_twin"] = {
            "batch_size": twin_batch,
            **list_agreement(_lists(outputs["fp32"]), _lists(twin), "twin"),
            **{f"grid_{k}": v for k, v in grid_cosines(outputs["fp32"], twin).items()},
        }
    return {**result, "retrieval_seconds": seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.device.startswith("cuda"):
        torch.set_num_threads(1)
    native, reason = bf16_support(args.device)
    common = {
        **extractor_settings(args), "device": args.device, "compression": "fp16",
        "composite_compression": "fp16", "store_composites": True,
        "batch_size": args.batch_size, "max_refs": args.max_refs,
    }  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "extraction_precision", "device": args.device, "extractor": args.extractor,
        "weights": weights_name(args),
        "extractor_size": args.dvt_size if args.extractor == "dvt" else args.size,
        "world": {"size": args.size, "train": args.train, "test": args.test},
        "max_refs": args.max_refs, "bf16_native": native, "bf16_note": reason,
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    config = SyntheticWorldConfig(image_size=args.size, num_train=args.train, num_test=args.test)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(Path(tmp) / "world", config)
        names = [record.composite for record in read_split(world, "test")]
        names = (names * (args.speed_images // len(names) + 1))[: args.speed_images]
        size = common["image_size"]
        images = torch.stack([load_gallery_image(world / name, size) for name in names])
        result["speed"] = measure_speed(RetrievalSettings(**common), images, args.batch_size)
        result.update(compare_lists(world, Path(tmp), common, args.twin_batch_size))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

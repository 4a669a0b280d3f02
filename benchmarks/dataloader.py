"""Is data loading the bottleneck? Loader images/s against the training step's images/s.

Prints ONE JSON line. On a generated synthetic world at ``--size`` px (JPEG files in the
iHarmony4 layout, decoded and resized like a real copy), it measures:
- the train loader alone, for each ``--workers`` setting, with and without the decoded and
  resized cache (``data.resize_cache``), pinned memory and persistent workers as configured;
- the training step alone (forward, backward, Adam) of ``--model`` on batches already in
  memory;
and reports ``loader_over_step`` per setting: above 1 the loader keeps up with training.

Usage: python benchmarks/dataloader.py [--size 256] [--batches 20] [--batch-size 16]
       [--workers 0 2] [--model unet] [--width 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import hydra
import torch

from raiha.models.harmonizer_output import paste_foreground
from raiha.training.loss import foreground_normalized_mse
from raiha.utils.compose import compose_run_config


def _datamodule(folder: Path, args: argparse.Namespace, workers: int, cache: bool):
    overrides = [
        f"data.image_size={args.size}", f"data.batch_size={args.batch_size}", f"data.num_workers={workers}",
        f"data.persistent_workers={workers > 0}", f"data.pin_memory={torch.cuda.is_available()}",
        f"data.resize_cache={cache}", f"data.synthetic.num_train={args.scenes}", "data.synthetic.num_test=16",
        "data.val_size=16", f"model.net.name={args.model}", f"model.net.base_width={args.width}",
    ]  # fmt: skip
    cfg = compose_run_config("train", overrides, output_dir=folder / "run", data_dir=folder / "data")
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return cfg, datamodule


def _loader_rate(datamodule, batches: int) -> float:
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)  # start the workers, fill the cache
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        count += batch["composite"].shape[0]
    return count / (time.perf_counter() - start)


def _step_rate(cfg, datamodule, batches: int) -> float:
    module = hydra.utils.instantiate(cfg.model)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    batch = next(iter(datamodule.train_dataloader()))
    module.train()
    count, start = 0, None
    for step in range(batches + 1):
        if step == 1:
            start = time.perf_counter()  # the first step warms up
        output = module(batch, use_reference=False)
        loss = foreground_normalized_mse(paste_foreground(output.image, batch["composite"], batch["mask"]),
                                         batch["real"], batch["mask"], 100.0)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        count += batch["composite"].shape[0] if step else 0
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args(argv)
    result = {"benchmark": "dataloader", "image_size": args.size, "batch_size": args.batch_size,
              "model": f"{args.model} width {args.width}", "torch_threads": torch.get_num_threads(), "loaders": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg, datamodule = _datamodule(folder, args, 0, False)
        step = _step_rate(cfg, datamodule, max(3, args.batches // 4))
        result["train_step_images_per_s"] = round(step, 2)
        for workers in args.workers:
            for cache in (False, True):
                _, datamodule = _datamodule(folder, args, workers, cache)
                rate = _loader_rate(datamodule, args.batches)
                result["loaders"].append({"num_workers": workers, "resize_cache": cache,
                                          "images_per_s": round(rate, 1), "loader_over_step": round(rate / step, 2)})  # fmt: skip
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

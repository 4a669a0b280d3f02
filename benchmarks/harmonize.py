"""Time ``Harmonizer.harmonize`` on one large photo (default 2000 x 2000 = 4 MP) on this machine.

Prints ONE JSON line: seconds per call without a reference and with a reference, split
into decoding, the network at the model size, and the full-resolution transfer, and the
ratio of the whole call over the network alone (the baseline measured in the same run).
The checkpoint is ``--ckpt`` or, by default, a ``raiha_synthetic`` model with random
weights (the timing does not depend on the weights).

Usage: python benchmarks/harmonize.py [--ckpt FILE] [--side 2000] [--repeats 3]
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
import numpy as np
import torch
from PIL import Image

from raiha import Harmonizer
from raiha.inference.full_resolution import transfer_to_full_resolution
from raiha.inference.inputs import prepare_input
from raiha.models.model_card import MODEL_CARD_KEY, build_model_card
from raiha.utils.compose import compose_run_config


def _random_checkpoint(folder: Path) -> Path:
    cfg = compose_run_config("train", ["+experiment=raiha_synthetic"], output_dir=folder, data_dir=folder)
    net = hydra.utils.instantiate(cfg.model.net)
    path = folder / "random.ckpt"
    state = {f"net.{key}": value for key, value in net.state_dict().items()}
    torch.save({"state_dict": state, MODEL_CARD_KEY: build_model_card(cfg)}, path)
    return path


def _best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = args.ckpt or _random_checkpoint(folder)
        model = Harmonizer.from_checkpoint(checkpoint)
        rng = np.random.default_rng(0)
        photo = np.kron(rng.integers(0, 256, (args.side // 50, args.side // 50, 3)), np.ones((50, 50, 1))).astype(np.uint8)
        mask = np.zeros(photo.shape[:2], np.uint8)
        mask[args.side // 4 : args.side // 2, args.side // 3 : 2 * args.side // 3] = 255
        photo_path, mask_path, reference_path = folder / "photo.jpg", folder / "mask.png", folder / "ref.jpg"
        Image.fromarray(photo).save(photo_path, quality=95)
        Image.fromarray(mask).save(mask_path)
        Image.fromarray(photo[::-1].copy()).save(reference_path, quality=95)
        plain = _best_of(args.repeats, lambda: model.harmonize(photo_path, mask_path))
        with_reference = _best_of(args.repeats, lambda: model.harmonize(photo_path, mask_path, reference=reference_path))
        decode = _best_of(args.repeats, lambda: prepare_input(photo_path, mask_path, model.image_size))
        prepared = prepare_input(photo_path, mask_path, model.image_size)
        jobs = model.plan(photo_path, mask_path)
        network = _best_of(args.repeats, lambda: list(model.run(jobs)))
        small = prepared.composite_small
        transfer = _best_of(args.repeats, lambda: transfer_to_full_resolution(
            prepared.composite, prepared.alpha, small, small * 0.9, prepared.mask_small))  # fmt: skip
    result = {
        "benchmark": "harmonize",
        "megapixels": round(args.side * args.side / 1e6, 2),
        "model_image_size": model.image_size,
        "checkpoint": "random raiha_synthetic" if args.ckpt is None else str(args.ckpt),
        "seconds_non_reference": round(plain, 3),
        "seconds_with_reference": round(with_reference, 3),
        "seconds_decode_and_check": round(decode, 3),
        "seconds_network_and_transfer": round(network, 3),
        "seconds_transfer_only": round(transfer, 3),
        "whole_over_network_and_transfer": round(plain / network, 2),
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

"""Does the loader keep up with the training step? Loader images/s against the step's images/s.

Prints ONE JSON line. On a generated synthetic world at ``--size`` px (JPEG files in the
iHarmony4 layout, decoded and resized like a real copy), in the full reference setting
by default (``+experiment=raiha_synthetic``: every sample reads a composite, its real image,
a reference and the semantic grids of both from the feature store, stored compressed as
``--compression`` says; augmented references crop the cached grid), it measures:
- the train loader alone for each ``--workers`` count, with the decoded-and-resized cache
  (``data.resize_cache``; also without it at the first count), pinned memory on CUDA and
  persistent workers; ``images_per_s_per_worker`` is the rate over max(1, workers); at the
  first count (with and without the cache) also ``one_thread_ms_per_sample``, the training
  dataset's ``__getitem__`` on one thread as in one worker;
- the training step alone (forward, backward, Adam) of the experiment's model on batches
  already on ``--device`` (``--compile``: ``torch.compile`` it, compile time excluded),
  or ``--step-images-per-s`` when given (e.g. 549: rhnet w32, bf16, compiled, on one H200);
and reports ``loader_over_step`` per setting (the goal: >= 1.5 with 8-16 workers).
In the reference setting ``grid_reads`` compares, in the same run and on one thread, the
stores' one-image ``source_content`` (what the grids use) with the generic row read it
replaced (``content(index).float() @ basis``): milliseconds per grid of the composite and
the reference store, per training sample (the dataset's ``__getitem__`` with either read;
old and new alternate, best of ``--passes``), and per grid of a paper-scale ``pca_int8``
store (32 x 32 cells, C = 768 -> k = 128, the DVT layout), with the share of the basis
product (``rows @ basis``) in it.

Usage: python benchmarks/dataloader.py [--device cuda] [--size 256] [--batch-size 48]
       [--workers 0 4 8 12 16] [--no-references] [--compression pca_int8] [--compile]
       [--step-images-per-s 549] [--scenes 200] [--batches 20] [--passes 10]
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

from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.models.harmonizer_output import paste_foreground
from raiha.retrieval.store.compression import CompressionConfig, FeatureCompressor
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter
from raiha.training.loss import foreground_normalized_mse
from raiha.utils.compose import compose_run_config

REFERENCE_SETTING = ["+experiment=raiha_synthetic"]


def _datamodule(folder: Path, args: argparse.Namespace, workers: int, cache: bool):
    overrides = [
        *(REFERENCE_SETTING if args.references else []),
        f"data.image_size={args.size}", f"data.batch_size={args.batch_size}", f"data.num_workers={workers}",
        f"data.persistent_workers={workers > 0}", f"data.pin_memory={args.device == 'cuda'}",
        f"data.resize_cache={cache}", f"data.synthetic.num_train={args.scenes}", "data.synthetic.num_test=16",
        "data.val_size=16", f"model.net.base_width={args.width}",
    ]  # fmt: skip
    if args.references:
        overrides.append(f"data.references.retrieval.compression={args.compression}")
    cfg = compose_run_config(
        "train", overrides, output_dir=folder / "run", data_dir=folder / "data"
    )
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


def _sample_ms(datamodule, samples: int = 32) -> float:
    """Milliseconds per training sample (``__getitem__``) on one thread, as in one worker."""
    dataset, threads = datamodule.train_set, torch.get_num_threads()
    count = min(samples, len(dataset))
    torch.set_num_threads(1)
    try:
        for index in range(min(4, count)):
            dataset[index]  # warm: path memos, first-use allocations
        start = time.perf_counter()
        for index in range(count):
            dataset[index]
        return (time.perf_counter() - start) / count * 1000
    finally:
        torch.set_num_threads(threads)


class _GenericReadStore:
    """A store read as the grids read it before the one-image path: the generic row read
    (``content``: gather into a new array, decode), ``.float()``, then the basis."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.image_paths, self.grid_size = store.image_paths, store.grid_size

    def source_content(self, index: int) -> torch.Tensor:
        rows = self.store.content(index).float()  # [h*w, k or C]
        basis = self.store.compressor.basis  # [k, C] or None
        return rows if basis is None or rows.shape[-1] == basis.shape[1] else rows @ basis


def _best_ms(work, passes: int) -> tuple[float, float]:
    """Best of ``passes`` runs of ``work()`` on one thread: (wall ms, CPU ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work()  # warm
        walls, cpus = [], []
        for _ in range(passes):
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        return min(walls) * 1000, min(cpus) * 1000
    finally:
        torch.set_num_threads(threads)


def _old_and_new(old_work, new_work, passes: int, count: int, **others) -> dict:
    """ms per item of the generic read and of the one-image read (and of ``others``, by name),
    best of ``passes`` alternating passes; wall clock, and CPU time (which other jobs on the
    cores disturb less)."""
    works = {"generic": old_work, "one_image": new_work, **others}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in works}
    for _ in range(passes):
        for name, work in works.items():
            times[name].append(_best_ms(work, 1))
    fields = {}
    for suffix, column in (("ms", 0), ("cpu_ms", 1)):
        best = {name: min(run[column] for run in runs) / count for name, runs in times.items()}
        fields |= {f"{name}_{suffix}": round(value, 3) for name, value in best.items()}
        fields[f"{suffix[:-2]}ratio"] = round(best["generic"] / best["one_image"], 2)
    return fields


def _grid_reads(datamodule, folder: Path, passes: int) -> dict:
    """The one-image grid read against the generic one (see the module docstring)."""
    dataset = datamodule.train_set
    lookup = dataset.semantic
    generic = SemanticGridLookup([_GenericReadStore(store) for store in lookup.stores])
    count = min(32, len(dataset))
    kinds = {"composite": [dataset.base.records[i].composite for i in range(count)],
             "reference": [dataset.base.records[i].real for i in range(count)]}  # fmt: skip
    result: dict = {"stores": [store.compression.method for store in lookup.stores]}
    for kind, paths in kinds.items():
        result[f"{kind}_grid"] = _old_and_new(
            lambda paths=paths: [generic.grid(path) for path in paths],
            lambda paths=paths: [lookup.grid(path) for path in paths], passes, len(paths),
        )  # fmt: skip

    def samples(semantic: SemanticGridLookup) -> None:
        dataset.semantic = semantic
        for index in range(count):
            dataset[index]

    try:
        result["sample"] = _old_and_new(
            lambda: samples(generic), lambda: samples(lookup), passes, count
        )
    finally:
        dataset.semantic = lookup
    result["paper_scale_grid"] = _paper_scale_grid(folder / "paper_store", passes)
    return result


def _paper_scale_grid(folder: Path, passes: int, images: int = 4) -> dict:
    """ms per grid of a pca_int8 store at 32 x 32 x 768 -> 128 (random content)."""
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(images, 1024, 768, generator=generator)  # [N, L, C]
    appearance = torch.rand(images, 1024, 108, generator=generator)  # [N, L, D]
    names = [f"paper/{i}.jpg" for i in range(images)]
    config = CompressionConfig(fit_images=images)
    writer = FeatureStoreWriter(
        folder, key={}, image_paths=names, grid_size=(32, 32), content_dim=768,
        appearance_dim=108, compression=config,
    )  # fmt: skip
    writer.set_compressor(FeatureCompressor.fit(config, content))
    writer.write_shard(0, content, appearance, names)
    store, generic = FeatureStore.open(folder), _GenericReadStore(FeatureStore.open(folder))
    rows = store.content(0).float()  # [1024, 128]
    basis = store.compressor.basis  # [128, 768]
    assert basis is not None
    result = _old_and_new(
        lambda: [generic.source_content(i) for i in range(images)],
        lambda: [store.source_content(i) for i in range(images)], passes, images,
        basis_product=lambda: [rows @ basis for _ in range(images)],
    )  # fmt: skip
    return {**result, "basis_product_share": round(
        result["basis_product_cpu_ms"] / result["one_image_cpu_ms"], 2)}  # fmt: skip


def _step_rate(cfg, datamodule, args: argparse.Namespace) -> float:
    """Images/s of forward + backward + Adam on one batch already on the device."""
    device = torch.device(args.device)
    module = hydra.utils.instantiate(cfg.model).to(device)
    if args.compile:
        module.net.compile()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    batch = next(iter(datamodule.train_dataloader()))
    batch = {
        key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()
    }
    use_reference = "reference" in batch
    module.train()
    steps, warmup = max(3, args.batches // 4), 3 if args.compile or args.device == "cuda" else 1
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        output = module(batch, use_reference=use_reference)
        pasted = paste_foreground(output.image, batch["composite"], batch["mask"])
        loss = foreground_normalized_mse(pasted, batch["real"], batch["mask"], 100.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch["composite"].shape[0] / (time.perf_counter() - start)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: 48 on cuda, 16 on cpu"
    )
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="default: 0 4 8 12 16 on cuda, 0 2 on cpu",
    )
    parser.add_argument(
        "--no-references", dest="references", action="store_false", help="the non-reference setting"
    )
    parser.add_argument(
        "--compression", default="pca_int8", help="feature store compression of the grids"
    )
    parser.add_argument("--width", type=int, default=16, help="the experiment model's base width")
    parser.add_argument("--compile", action="store_true", help="torch.compile the step's network")
    parser.add_argument("--passes", type=int, default=10, help="grid_reads: best of this many")
    parser.add_argument(
        "--step-images-per-s", type=float, default=None, help="compare with this step rate instead"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    args.batch_size = args.batch_size or (48 if args.device == "cuda" else 16)
    args.workers = args.workers or ([0, 4, 8, 12, 16] if args.device == "cuda" else [0, 2])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    setting = (
        "reference (raiha_synthetic: composite, real, reference, 2 semantic grids)"
        if args.references
        else "non-reference"
    )
    result = {"benchmark": "dataloader", "device": args.device, "image_size": args.size, "batch_size": args.batch_size,
              "setting": setting, "grid_compression": args.compression if args.references else None,
              "pin_memory": args.device == "cuda", "torch_threads": torch.get_num_threads(), "loaders": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg, datamodule = _datamodule(folder, args, 0, True)
        result["model"] = f"{cfg.model.net.name} width {args.width}" + (
            " compiled" if args.compile else ""
        )
        if args.step_images_per_s:
            step, result["step_source"] = args.step_images_per_s, "--step-images-per-s"
        else:
            step, result["step_source"] = (
                _step_rate(cfg, datamodule, args),
                f"measured on {args.device}",
            )
        result["train_step_images_per_s"] = round(step, 2)
        if args.references:
            result["grid_reads"] = _grid_reads(datamodule, folder, args.passes)
        settings = [(args.workers[0], False)] + [(workers, True) for workers in args.workers]
        for workers, cache in settings:
            _, datamodule = _datamodule(folder, args, workers, cache)
            sample_ms = _sample_ms(datamodule) if workers == args.workers[0] else None
            rate = _loader_rate(datamodule, args.batches)
            result["loaders"].append({
                "num_workers": workers, "resize_cache": cache, "images_per_s": round(rate, 1),
                **({"one_thread_ms_per_sample": round(sample_ms, 2)} if sample_ms is not None else {}),
                "images_per_s_per_worker": round(rate / max(1, workers), 1), "loader_over_step": round(rate / step, 2),
            })  # fmt: skip
    many = [
        row for row in result["loaders"] if 8 <= row["num_workers"] <= 16 and row["resize_cache"]
    ]
    if many:
        result["keeps_up_with_8_to_16_workers"] = (
            max(row["loader_over_step"] for row in many) >= 1.5
        )
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

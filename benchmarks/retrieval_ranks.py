"""The list search shared by N processes: wall time against one process, same lists.

Prints ONE JSON line. A synthetic world is generated and its feature stores built once;
then, for each N of ``--ranks``, the search alone (stores kept, lists and scores deleted)
runs in N spawned processes joined by gloo, each scoring its parts of the queries
(``retrieval.query_part_size``), rank zero merging. ``seconds`` is rank zero's wall time
between a first and a last barrier (process start and imports excluded); ``speedup`` is
against N = 1 in the same run; ``identical`` whether every N wrote the bytes of N = 1.
With ``--device cuda`` each rank searches on GPU ``rank`` (batched search).

Usage: python benchmarks/retrieval_ranks.py [--ranks 1,2] [--train 800] [--test 200]
    [--size 64] [--search prefilter] [--part-size 64] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from raiha.retrieval.pipeline import build_reference_lists
from raiha.retrieval.settings import RetrievalSettings
from raiha.utils.rank_group import rank_group_from_torch_distributed
from raiha.world import SyntheticWorldConfig, generate_world

SPLITS = ("train", "test")


def _rank(rank: int, world_size: int, port: int, world: str, cache: str, fields: dict, threads: int, out: str) -> None:
    """One rank: join, wait for all, search its parts, wait, report (rank zero)."""
    torch.set_num_threads(threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    if fields.get("search_device", "cpu").startswith("cuda"):
        torch.cuda.set_device(rank % torch.cuda.device_count())
    group = rank_group_from_torch_distributed()
    group.barrier()
    start = time.perf_counter()
    outputs = build_reference_lists(Path(world), Path(cache), RetrievalSettings(**fields), progress=False, group=group)
    group.barrier()
    seconds = time.perf_counter() - start
    if group.is_zero:
        lists = {split: str(outputs.lists[split]) for split in SPLITS}
        Path(out).write_text(json.dumps({"seconds": seconds, "lists": lists}))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _search_with(ranks: int, work: Path, world: Path, fields: dict, threads: int) -> dict:
    """Copy the stores, drop lists and scores, search with ``ranks`` processes."""
    cache = work / f"cache-{ranks}"
    shutil.copytree(work / "stores", cache)
    for lists in cache.glob("retrieval/*/lists"):
        shutil.rmtree(lists)
    out = work / f"result-{ranks}.json"
    args = (ranks, _free_port(), str(world), str(cache), fields, threads, str(out))
    mp.spawn(_rank, args=args, nprocs=ranks, join=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2", help="comma-separated process counts")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--search", default="prefilter")
    parser.add_argument("--part-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="search_device of the batched search")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    args = parser.parse_args(argv)
    counts = [int(value) for value in args.ranks.split(",")]
    fields = {"image_size": args.size, "search": args.search, "search_device": args.device,
              "query_part_size": args.part_size}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = SyntheticWorldConfig(image_size=args.size, num_train=args.train, num_test=args.test)
        world = generate_world(work / "world", config)
        torch.set_num_threads(args.threads)
        build_reference_lists(world, work / "stores", RetrievalSettings(**fields), progress=False)
        results = {n: _search_with(n, work, world, fields, args.threads) for n in counts}
        reference = {split: Path(path).read_bytes() for split, path in results[counts[0]]["lists"].items()}
        identical = all(
            Path(path).read_bytes() == reference[split]
            for result in results.values()
            for split, path in result["lists"].items()
        )
    base = results[counts[0]]["seconds"]
    record = {
        "benchmark": "retrieval_ranks", "device": args.device, "search": args.search,
        "world": [args.train, args.test, args.size], "part_size": args.part_size,
        "threads_per_rank": args.threads, "cpu_cores": os.cpu_count(),
        "seconds": {str(n): round(results[n]["seconds"], 2) for n in counts},
        "speedup": {str(n): round(base / results[n]["seconds"], 2) for n in counts},
        "identical": identical,
    }  # fmt: skip
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main(sys.argv[1:])

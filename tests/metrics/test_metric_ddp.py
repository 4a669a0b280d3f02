"""The metric under a real 2-process gloo group equals the 1-process answer.

The second rank also receives a duplicate of a sample (what DistributedSampler pads
with): deduplication by sample index must keep it from counting twice.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from raiha.metrics.harmonization_metric import HarmonizationMetrics

pytestmark = pytest.mark.slow


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(6, 3, 8, 8, generator=generator) * 2 - 1
    pred = (target + 0.2 * torch.randn(6, 3, 8, 8, generator=generator)).clamp(-1, 1)
    mask = torch.zeros(6, 1, 8, 8)
    mask[:, :, 2:6, 1:5] = 1
    return {"pred": pred, "target": target, "mask": mask,
            "subset": torch.tensor([0, 1, 1, 0, 1, 1]), "index": torch.arange(6)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    batch = _batch()
    rows = [0, 2, 4] if rank == 0 else [1, 3, 5, 0]  # rank 1 repeats sample 0 (sampler padding)
    metric = HarmonizationMetrics(["easy", "hard"])
    metric.update(batch["pred"][rows], batch["target"][rows], batch["mask"][rows],
                  batch["subset"][rows], batch["index"][rows])
    result = metric.compute()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path: Path) -> None:
    batch = _batch()
    single = HarmonizationMetrics(["easy", "hard"])
    single.update(batch["pred"], batch["target"], batch["mask"], batch["subset"], batch["index"])
    expected = single.compute()
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert result["all"]["n"] == expected["all"]["n"] == 6
        for group in ["easy", "hard"]:
            for key in ("mse", "psnr", "fmse"):
                assert result["subsets"][group][key] == pytest.approx(expected["subsets"][group][key], rel=1e-9)

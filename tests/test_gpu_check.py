"""``make gpu-check`` and the benchmarks' device handling, as far as a machine without CUDA can go:
the check reports the environment and composes the GPU runs' configs, then exits cleanly;
bf16 benchmark variants run only where bf16 is native, and say why not."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ALL_GPU_STEPS = ["train_step", "retrieval", "raiha_synthetic", "raiha"]


def _benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", REPO / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_skips_bf16_variants_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train_step = _benchmark("train_step")
    from raiha.utils import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    args = train_step._parse(
        [
            "--device",
            "cpu",
            "--variants",
            "authors",
            "authors+bf16",
            "cached",
            "cached+bf16+compile",
        ]
    )
    assert (args.batch, args.steps, args.warmup, args.quick_size) == (4, 2, 1, 64)
    variants, skipped, report = train_step._chosen_variants(args)
    assert variants == ["authors", "cached"]
    assert set(skipped) == {"authors+bf16", "cached+bf16+compile"}
    assert "neither avx512_bf16 nor amx_bf16" in skipped["authors+bf16"]
    assert report["bf16_native"] is False and report["chosen_precision"] == "32-true"
    args.force_bf16 = True
    assert train_step._chosen_variants(args)[0] == [
        "authors",
        "authors+bf16",
        "cached",
        "cached+bf16+compile",
    ]
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    args.force_bf16 = False
    assert train_step._chosen_variants(args)[1] == {}
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            train_step._parse(["--device", "cuda"])


@pytest.mark.slow
def test_gpu_check_runs_from_a_source_checkout(tmp_path: Path) -> None:
    """``PYTHONPATH=src python benchmarks/gpu_check.py``: exit 0 and one JSON summary line."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [
        sys.executable,
        "benchmarks/gpu_check.py",
        "--out",
        str(tmp_path),
        "--skip",
        *ALL_GPU_STEPS,
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    environment = summary["environment"]
    assert environment["raiha_from"] == str(REPO / "src" / "raiha")
    assert environment["packages"]["torch"] == torch.__version__
    for name in ("raiha_synthetic", "raiha"):
        config = summary["configs"][name]
        assert config["compile"] == "auto" and config["precision"] in ("bf16-mixed", "32-true"), (
            config
        )
    assert summary["configs"]["raiha"]["batch_size"] == 48
    if torch.cuda.is_available():
        assert summary["ok"] and all(
            row == {"skipped": "--skip"} for row in summary["steps"].values()
        )
    else:
        assert summary["message"].startswith("no CUDA device") and summary["steps"] == {}

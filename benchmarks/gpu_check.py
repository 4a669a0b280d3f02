"""``make gpu-check``: everything a CUDA machine should show about raiha, in one command.

Runs, each step in its own process with a time limit (the whole check: under 8 minutes
on one H200), and prints ONE JSON summary line at the end (also written to
``OUT/summary.json``; every step's own output lands in ``OUT/<step>.log``):

1. ``environment``: Python, torch, CUDA, the device, native bf16 and the precision raiha
   chooses on it, package versions, where raiha is imported from; the configs of the GPU
   runs composed with their resolved precision and compile choice (CPU parts, always);
2. ``train_step``: ``benchmarks/train_step.py --device cuda`` (authors fp32 / bf16 vs raiha
   cached, bf16, compiled), batch 48 at 256 px;
3. ``retrieval``: ``benchmarks/retrieval.py --device cuda`` (index built on the GPU);
4. ``raiha``: the real-data experiment ``+experiment=raiha trainer=gpu`` on a small 256 px
   synthetic world in the iHarmony4 layout, DVT extractor with fixed random weights
   (nothing downloads), one epoch;
5. ``raiha_synthetic``: ``python -m raiha.train +experiment=raiha_synthetic trainer=gpu``
   (the whole Table III row; its hard fMSE is the precision figure of experiments/precision.md).
Each step is capped (``STEP_CAP_S``) and gets at most what is left of ``--budget-s``; a step
that runs out is reported with ``"returncode": "timeout"``.

Without a CUDA device it runs step 1, says "no CUDA device" and exits with code 0.
Works from a source checkout: ``PYTHONPATH=src python benchmarks/gpu_check.py`` (add a
``pip install --target`` folder to PYTHONPATH for missing packages).

Usage: python benchmarks/gpu_check.py [--out DIR] [--budget-s 470] [--skip STEP ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra",
    "omegaconf",
    "timm",
    "kornia",
    "torchmetrics",
    "numpy",
    "PIL",
)
# in this order; each step gets at most its cap and what is left of the budget
STEPS = ("train_step", "retrieval", "raiha", "raiha_synthetic")
STEP_CAP_S = {"train_step": 200, "retrieval": 60, "raiha": 150, "raiha_synthetic": 470}
GPU_RUNS = {
    "raiha_synthetic": ["+experiment=raiha_synthetic", "trainer=gpu"],
    "raiha": ["+experiment=raiha", "trainer=gpu"],
}
# the real experiment on a small world: random but seeded DVT weights, small retrieval index
SMALL_REAL_WORLD = [
    "data.subsets=[easy,hard]", "data.val_size=8", "data.num_workers=4", "trainer.max_epochs=1",
    "data.references.retrieval.extractor_kwargs.pretrained=false",
    "+data.references.retrieval.extractor_kwargs.allow_random_weights=true",
    "data.references.retrieval.num_workers=2", "data.references.retrieval.index.content_clusters=32",
    "data.references.retrieval.index.appearance_clusters=16", "reference_seeds=[0]",
]  # fmt: skip


def _version(name: str) -> str | None:
    try:
        module = importlib.import_module(name)
    except Exception as error:  # a missing or broken package is what this report is for
        return f"missing ({type(error).__name__})"
    return str(getattr(module, "__version__", "?"))


def environment() -> dict:
    """What this machine offers and what raiha chooses on it."""
    import torch

    import raiha
    from raiha.utils.precision import auto_precision, bf16_support

    report = {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "packages": {name: _version(name) for name in PACKAGES},
        "raiha_from": str(Path(raiha.__file__).resolve().parent),
        "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
        "cpu_bf16": dict(zip(("native", "reason"), bf16_support("cpu"))),
    }  # fmt: skip
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        report["device"] = {
            "name": properties.name, "count": torch.cuda.device_count(),
            "memory_gb": round(properties.total_memory / 1e9, 1), "capability": f"{properties.major}.{properties.minor}",
        }  # fmt: skip
        report["cuda_bf16"] = dict(zip(("native", "reason"), bf16_support("cuda")))
        report["chosen_precision_cuda"] = auto_precision("cuda")
    return report


def composed_runs(out: Path) -> dict:
    """The GPU runs' configs, composed here: resolved precision and compile choice (or the error)."""
    from raiha.utils.compose import compose_run_config

    runs = {}
    for name, overrides in GPU_RUNS.items():
        extra = ["data.root=/nonexistent"] + SMALL_REAL_WORLD if name == "raiha" else []
        try:
            cfg = compose_run_config(
                "train", overrides + extra, output_dir=out / name, data_dir=out / "data"
            )
            runs[name] = {"precision": cfg.trainer.precision, "compile": cfg.model.compile,
                          "compile_mode": cfg.model.compile_mode, "batch_size": cfg.data.batch_size}  # fmt: skip
        except Exception as error:  # report, do not stop: the other parts still run
            runs[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    return runs


def run_step(name: str, command: list[str], out: Path, timeout: float) -> dict:
    """Run one step; its output goes to ``OUT/<name>.log``, its last JSON line into the summary."""
    start = time.perf_counter()
    log_path = out / f"{name}.log"
    # its own process group: a timeout ends the step's children too (benchmark variants, loader workers)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=max(1.0, timeout))
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = "timeout"
    log_path.write_text(
        f"$ {' '.join(command)}\n{stdout}\n--- stderr ---\n{stderr}", encoding="utf-8"
    )
    row: dict = {
        "ok": code == 0,
        "returncode": code,
        "seconds": round(time.perf_counter() - start, 1),
        "log": str(log_path),
    }
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        try:
            row["result"] = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if code != 0:
        row["error_tail"] = stderr.strip()[-800:]
    return row


def _metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    model = record.get("model", record)
    return {"all": model.get("all"), "subsets": model.get("subsets")}


def gpu_commands(out: Path) -> dict[str, list[list[str]]]:
    """The commands of steps 2-5 (a step may be several commands run in order)."""
    python = sys.executable
    train = [python, "-m", "raiha.train", "logger=csv", f"paths.data_dir={out / 'data'}"]
    world = out / "world256"
    return {
        "train_step": [[python, "benchmarks/train_step.py", "--device", "cuda", "--steps", "5", "--warmup", "2",
                        "--variants", "authors", "authors+bf16", "cached", "cached+bf16", "cached+bf16+compile"]],
        "retrieval": [[python, "benchmarks/retrieval.py", "--device", "cuda", "--gallery", "1000", "--queries", "20",
                       "--brute-queries", "2"]],
        "raiha_synthetic": [train + GPU_RUNS["raiha_synthetic"] + [f"hydra.run.dir={out / 'raiha_synthetic'}"]],
        "raiha": [
            [python, "-m", "raiha.synth", "--out", str(world), "--image-size", "256", "--num-train", "64",
             "--num-test", "16", "--num-identities", "16"],
            train + GPU_RUNS["raiha"] + [f"data.root={world}", *SMALL_REAL_WORLD, f"hydra.run.dir={out / 'raiha'}"],
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "logs" / "gpu_check" / time.strftime("%Y%m%d-%H%M%S")
    )
    parser.add_argument(
        "--budget-s", type=float, default=470.0, help="the whole check's time limit"
    )
    parser.add_argument("--skip", nargs="*", choices=STEPS, default=[])
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.budget_s
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "check": "gpu-check",
        "out": str(out),
        "environment": environment(),
        "configs": composed_runs(out),
    }
    steps: dict = {}
    summary["steps"] = steps
    if not summary["environment"]["cuda_available"]:
        summary["message"] = "no CUDA device: ran the CPU parts (environment, configs) only"
    else:
        commands = gpu_commands(out)
        for name in STEPS:
            if name in args.skip:
                steps[name] = {"skipped": "--skip"}
                continue
            for command in commands[name]:
                steps[name] = run_step(
                    name, command, out, min(STEP_CAP_S[name], deadline - time.monotonic())
                )
                if not steps[name]["ok"]:
                    break
            if name in GPU_RUNS:
                steps[name]["metrics"] = _metrics(out / name)
        summary["ok"] = all(row.get("ok", True) for row in steps.values())
    summary["seconds"] = round(args.budget_s - (deadline - time.monotonic()), 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary))
    return 0 if summary.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())

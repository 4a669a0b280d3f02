"""Issue 17 item 1: a run checks what it needs first and stops with one line that says what
to pass; a run that never started leaves no run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raiha.training.preflight import remove_unstarted_run_folder, run_problems
from tests.hydra_helpers import compose_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp_path: Path, overrides: list[str], name: str = "train"):
    return compose_config(name, overrides, output_dir=tmp_path / "out", data_dir=tmp_path / "data")


@pytest.fixture(autouse=True)
def no_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IHARMONY4_ROOT", raising=False)
    monkeypatch.delenv("DVT_DENOISER_DIR", raising=False)


def test_the_users_command_names_everything_to_pass(tmp_path: Path) -> None:
    problems = run_problems(_cfg(tmp_path, ["+experiment=ablation_sgf"]), gpu_count=lambda: 0)
    text = "; ".join(problems)
    assert "pass data.root=/path/to/iHarmony4" in problems[0]
    assert "extractor_kwargs.pretrained_file=" in text and "denoiser_checkpoint=" in text
    assert "pass trainer=cpu data.references.retrieval.device=cpu" in text


def test_a_gpu_machine_and_the_assets_make_it_ready(tmp_path: Path) -> None:
    root = tmp_path / "iHarmony4"
    (root / "HFlickr").mkdir(parents=True)
    weights, denoiser = tmp_path / "dinov2.safetensors", tmp_path / "dvt.pth"
    weights.touch()
    denoiser.touch()
    kwargs = "data.references.retrieval.extractor_kwargs"
    ready = [f"data.root={root}", f"{kwargs}.pretrained_file={weights}", f"{kwargs}.denoiser_checkpoint={denoiser}"]
    assert run_problems(_cfg(tmp_path, ["+experiment=ablation_sgf", *ready]), gpu_count=lambda: 1) == []
    on_cpu = ["trainer=cpu", "data.references.retrieval.device=cpu"]
    assert run_problems(_cfg(tmp_path, ["+experiment=ablation_sgf", *ready, *on_cpu]), gpu_count=lambda: 0) == []
    (problem,) = run_problems(_cfg(tmp_path, ["+experiment=raiha", *ready, "trainer=ddp"]), gpu_count=lambda: 1)
    assert "has 1 GPU(s): pass trainer=cpu" in problem


def test_bad_roots_are_named(tmp_path: Path) -> None:
    (problem,) = run_problems(_cfg(tmp_path, ["data=iharmony4", f"data.root={tmp_path / 'nowhere'}"]), lambda: 0)
    assert "is not a folder" in problem
    (problem,) = run_problems(_cfg(tmp_path, ["data=iharmony4", f"data.root={tmp_path}"]), lambda: 0)
    assert "holds none of ['HCOCO', 'HAdobe5k', 'HFlickr', 'Hday2night']" in problem


def test_synthetic_runs_and_missing_checkpoints(tmp_path: Path) -> None:
    assert run_problems(_cfg(tmp_path, []), gpu_count=lambda: 0) == []
    assert run_problems(_cfg(tmp_path, ["+experiment=raiha_synthetic"]), gpu_count=lambda: 0) == []
    (problem,) = run_problems(_cfg(tmp_path, ["ckpt_path=last"]), gpu_count=lambda: 0)
    assert "ckpt_path=last but" in problem
    (problem,) = run_problems(_cfg(tmp_path, [f"ckpt_path={tmp_path / 'x.ckpt'}"], "eval"), gpu_count=lambda: 0)
    assert "pass ckpt_path=" in problem
    overrides = [f"ckpt_path={tmp_path}", f"input={tmp_path / 'a.jpg'}", f"mask={tmp_path}", "device=cuda"]
    problems = run_problems(_cfg(tmp_path, overrides, "harmonize"), gpu_count=lambda: 0)
    assert any("pass device=cpu" in p for p in problems) and any("a.jpg does not exist" in p for p in problems)
    assert run_problems(_cfg(tmp_path, [], "eval"), gpu_count=lambda: 0) == ["ckpt_path is required: pass ckpt_path=/path/to/file.ckpt"]
    assert len(run_problems(_cfg(tmp_path, [], "harmonize"), gpu_count=lambda: 0)) == 3  # ckpt_path, input, mask


def test_only_an_unstarted_run_folder_is_removed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    run = logs / "train" / "runs" / "2026-01-01"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").touch()
    assert remove_unstarted_run_folder(run, logs) and not logs.exists()
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    assert not remove_unstarted_run_folder(run, logs) and run.is_dir()


@pytest.mark.slow
def test_the_command_stops_with_one_line_and_leaves_no_run_folder(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("IHARMONY4_ROOT", "DVT_DENOISER_DIR")}
    env.update(RAIHA_LOG_DIR=str(tmp_path / "logs"), CUDA_VISIBLE_DEVICES="", WANDB_MODE="offline")
    done = subprocess.run([sys.executable, "-m", "raiha.train", "+experiment=ablation_sgf"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("raiha.train: cannot start: data.root is unset")
    assert "pass trainer=cpu" in line and "Traceback" not in done.stderr
    assert not (tmp_path / "logs").exists() and not (tmp_path / "wandb").exists()

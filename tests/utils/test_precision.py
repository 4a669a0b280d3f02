"""The precision auto-choice: bf16 autocast only on hardware that computes bf16 natively."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import raiha.utils.config  # noqa: F401  (registers the resolvers)
from raiha.utils import precision
from raiha.utils.precision import auto_precision, bf16_support, cpu_flags

EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(EPYC)
    assert cpu_flags(path) == frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_cpu_bf16_only_with_avx512_bf16_or_amx(tmp_path: Path) -> None:
    epyc, spr = tmp_path / "epyc", tmp_path / "spr"
    epyc.write_text(EPYC)
    spr.write_text(SAPPHIRE_RAPIDS)
    supported, reason = bf16_support("cpu", flags=cpu_flags(epyc))
    assert not supported and "neither avx512_bf16 nor amx_bf16" in reason
    supported, reason = bf16_support("cpu", flags=cpu_flags(spr))
    assert supported and reason == "CPU exposes avx512_bf16, amx_bf16"
    assert bf16_support("cpu", flags=frozenset({"amx_bf16"}))[0]


def test_auto_precision_follows_the_hardware_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(precision, "_logged", set())
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    with caplog.at_level(logging.INFO, logger="raiha.utils.precision"):
        assert auto_precision("cpu") == "32-true"
    assert "precision 32-true on cpu: CPU exposes neither" in caplog.text
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert auto_precision("cpu") == "bf16-mixed"
    # the config resolver: trainer=gpu uses ${auto_precision:cuda}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert OmegaConf.create({"p": "${auto_precision:cuda}"}).p == "32-true"
    assert bf16_support("gpu") == (False, "no CUDA device")
    assert (
        OmegaConf.create({"p": "${auto_precision:auto}"}).p == "bf16-mixed"
    )  # auto -> the CPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert bf16_support("cuda") == (True, "NVIDIA H200 has native bf16")
    assert OmegaConf.create({"p": "${auto_precision:gpu}"}).p == "bf16-mixed"
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert OmegaConf.create({"p": "${auto_precision:cuda}"}).p == "32-true"  # emulated (pre-Ampere)


def test_trainer_gpu_config_uses_the_auto_choice(tmp_path: Path) -> None:
    from tests.hydra_helpers import compose_config

    cfg = compose_config("train", ["trainer=gpu"], output_dir=tmp_path / "run", data_dir=tmp_path)
    assert OmegaConf.to_container(cfg.trainer)["precision"] == "${auto_precision:cuda}"
    expected = "bf16-mixed" if bf16_support("cuda")[0] else "32-true"
    assert cfg.trainer.precision == expected
    assert cfg.model.compile == "auto"

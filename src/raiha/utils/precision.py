"""Choose the training precision from the hardware: bf16 autocast only where it is native.

bf16 autocast pays off on GPUs with bf16 tensor cores (Ampere and later) and on CPUs
with ``avx512_bf16`` or AMX; elsewhere it is emulated: on an AMD EPYC without either the
``cached+bf16`` training step ran about 20x slower than fp32 (``benchmarks/train_step.py``).
``auto_precision`` returns Lightning's precision string and logs why; configs use it as
``${auto_precision:cuda}`` (``conf/trainer/gpu.yaml``) or ``trainer.precision='${auto_precision:cpu}'``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
BF16 = "bf16-mixed"
FP32 = "32-true"
_logged: set[tuple[str, str]] = set()


def cpu_flags(cpuinfo: str | Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first processor in ``cpuinfo`` (empty when unreadable)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def resolve_device_type(device: str) -> str:
    """``cuda`` or ``cpu`` for a trainer accelerator or device name (``gpu``, ``auto``, ``cuda:1``)."""
    name = str(device).lower().split(":")[0]
    if name in ("gpu", "cuda"):
        return "cuda"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def bf16_support(device: str, *, flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and the reason in words.

    Args:
        device: "cuda", "gpu", "cpu" or "auto".
        flags: the CPU's flags (default: read from ``/proc/cpuinfo``); for tests.
    """
    device_type = resolve_device_type(device)
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        name = torch.cuda.get_device_name()
        try:  # torch >= 2.3: do not count bf16 emulated in fp32 (pre-Ampere GPUs)
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:
            native = torch.cuda.is_bf16_supported()
        return native, f"{name} {'has' if native else 'lacks'} native bf16"
    if device_type == "cpu":
        flags = cpu_flags() if flags is None else flags
        present = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        if present:
            return True, f"CPU exposes {', '.join(present)}"
        return (
            False,
            f"CPU exposes neither {' nor '.join(BF16_CPU_FLAGS)} (bf16 would be emulated, ~20x slower)",
        )
    return False, f"no bf16 rule for device {device!r}"


def auto_precision(device: str = "auto") -> str:
    """Lightning's ``precision`` for ``device``: "bf16-mixed" where bf16 is native, else "32-true"."""
    supported, reason = bf16_support(device)
    choice = BF16 if supported else FP32
    if (device, choice) not in _logged:
        _logged.add((device, choice))
        log.info("precision %s on %s: %s", choice, resolve_device_type(device), reason)
    return choice

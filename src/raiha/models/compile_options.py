"""``torch.compile`` of a harmonizer (``model.compile``) with checkpoints that keep plain keys.

The network is compiled in place (``nn.Module.compile``), so its state dict, the
checkpoint and DDP see the same parameter names as an eager run. A network compiled by
hand (``torch.compile(net)``, an ``OptimizedModule``) prefixes every key with
``_orig_mod.``; ``strip_compile_prefix`` removes it, so such checkpoints load too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from torch import nn

COMPILE_PREFIX = "_orig_mod."
COMPILE_CHOICES = (True, False, "auto")

Value = TypeVar("Value")


def strip_compile_prefix(state: Mapping[str, Value]) -> dict[str, Value]:
    """``state`` with every ``_orig_mod.`` removed from its keys (``net._orig_mod.x`` -> ``net.x``)."""
    stripped: dict[str, Value] = {}
    for key, value in state.items():
        plain = key.replace(COMPILE_PREFIX, "")
        if plain in stripped:
            raise ValueError(f"state dict holds both {plain!r} and a compiled copy {key!r}")
        stripped[plain] = value
    return stripped


def unwrap_compiled(net: nn.Module, compile: Any) -> tuple[nn.Module, Any]:
    """The eager module behind a hand-compiled ``net`` and the compile choice to use.

    ``torch.compile(net)`` returns an ``OptimizedModule`` whose ``_orig_mod`` is the
    network; raiha keeps the network itself and compiles it in place instead (compile
    becomes True), so key names stay plain.
    """
    original = getattr(net, "_orig_mod", None)
    if isinstance(original, nn.Module) and type(net).__name__ == "OptimizedModule":
        return original, True
    return net, _parse_choice(compile)


def _parse_choice(compile: Any) -> Any:
    if isinstance(compile, str) and compile.lower() in ("true", "false", "auto"):
        return {"true": True, "false": False, "auto": "auto"}[compile.lower()]
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"model.compile must be true, false or auto, not {compile!r}")
    return compile


def should_compile(compile: Any, device_type: str, *, fitting: bool = True) -> bool:
    """Whether to compile on ``device_type`` ("cuda", "cpu", ...).

    "auto" compiles when fitting on CUDA only: on the CPU inductor's C++ compile costs more
    than short runs gain, and a one-pass evaluation does not repay the compile time.
    """
    choice = _parse_choice(compile)
    return (device_type == "cuda" and fitting) if choice == "auto" else bool(choice)

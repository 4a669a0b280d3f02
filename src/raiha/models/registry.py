"""A registry of harmonizer architectures: ``create_harmonizer(name, **kwargs)`` (timm style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_HARMONIZERS: dict[str, Callable[..., nn.Module]] = {}


def register_harmonizer(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class or factory decorator that makes ``name`` available to ``create_harmonizer``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _HARMONIZERS:
            raise ValueError(f"harmonizer {name!r} is already registered")
        _HARMONIZERS[name] = factory
        return factory

    return decorator


def list_harmonizers() -> list[str]:
    """Names accepted by ``create_harmonizer``."""
    _import_builtin_models()
    return sorted(_HARMONIZERS)


def create_harmonizer(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered harmonizer, e.g. ``create_harmonizer("unet", base_width=16)``."""
    _import_builtin_models()
    if name not in _HARMONIZERS:
        raise ValueError(f"unknown harmonizer {name!r}; registered: {sorted(_HARMONIZERS)}")
    return _HARMONIZERS[name](**kwargs)


def _import_builtin_models() -> None:
    """Import the modules whose decorators fill the registry."""
    from raiha.models import rhnet, unet  # noqa: F401

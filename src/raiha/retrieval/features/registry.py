"""Registry of dense content feature extractors: ``@register_extractor(name)`` and ``create_extractor``.

A new extractor (e.g. a weight-free one for the synthetic world) subclasses
:class:`raiha.retrieval.features.content_features.DenseFeatureExtractor`, decorates itself with
``@register_extractor("my_name")`` and is then reachable from config as
``create_extractor("my_name", **kwargs)``. The module that defines it must be imported
first (the built-in ones are imported by ``raiha.retrieval``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from raiha.retrieval.features.content_features import DenseFeatureExtractor

ExtractorClass = TypeVar("ExtractorClass", bound=type)

_EXTRACTORS: dict[str, type[DenseFeatureExtractor]] = {}


def register_extractor(name: str) -> Callable[[ExtractorClass], ExtractorClass]:
    """Class decorator: register an extractor under ``name`` and set its ``name`` attribute."""

    def decorate(cls: ExtractorClass) -> ExtractorClass:
        if name in _EXTRACTORS and _EXTRACTORS[name] is not cls:
            raise ValueError(
                f"extractor name '{name}' is already registered by {_EXTRACTORS[name].__name__}"
            )
        cls.name = name  # type: ignore[attr-defined]
        _EXTRACTORS[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def available_extractors() -> list[str]:
    """Names of the registered extractors, sorted."""
    _import_builtin_extractors()
    return sorted(_EXTRACTORS)


def create_extractor(name: str, **kwargs: Any) -> DenseFeatureExtractor:
    """Instantiate the extractor registered as ``name`` with keyword arguments ``kwargs``."""
    _import_builtin_extractors()
    if name not in _EXTRACTORS:
        raise KeyError(f"unknown content extractor '{name}'; registered: {sorted(_EXTRACTORS)}")
    return _EXTRACTORS[name](**kwargs)


def _import_builtin_extractors() -> None:
    """Import the modules whose import registers the built-in extractors."""
    import raiha.retrieval.features.content_features  # noqa: F401
    import raiha.retrieval.features.synthetic_extractor  # noqa: F401

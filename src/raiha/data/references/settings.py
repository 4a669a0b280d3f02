"""The reference setting (``data.references``), parsed once from config into typed settings.

Everything that reads ``data.references`` (the datamodule, its wiring, the model card, the
test protocol) reads a :class:`ReferenceSettings`; the defaults live in
``conf/data/*.yaml`` and here, and unknown keys are refused with the list of known ones.
The retrieval settings inside are resolved here too: their ``image_size`` (None: the
harmonizer's size) and, with SGF on, ``store_composites`` (SGF reads every composite's
grid from the stores).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raiha.retrieval.settings import RetrievalSettings

log = logging.getLogger(__name__)

AUTO = "auto"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ReferenceSettings:
    """The retrieval-augmented setting of the datamodule (off: the non-reference setting).

    Args:
        enabled: add a reference to every sample.
        train_list / test_list: RAHarmony4 JSONL lists (relative to the dataset root or
            absolute), ``"auto"`` (built by the retrieval pipeline) or None (augmented only).
        use_retrieved / use_augmented: the training reference sources (Table III ablations).
        crop_fraction, min_foreground_fraction, crop_tries: the augmented reference's crop.
        train_seed / eval_seed: seeds of the training and evaluation reference draws.
        test_only_listed: test only the composites that have references (RAHarmony4).
        semantic: SGF reads the semantic grids of composites and references from the stores.
        retrieval: the pipeline's settings, resolved (``image_size`` filled in).
    """

    enabled: bool = False
    train_list: str | None = AUTO
    test_list: str | None = AUTO
    use_retrieved: bool = True
    use_augmented: bool = True
    crop_fraction: float = 196 / 256
    min_foreground_fraction: float = 0.5
    crop_tries: int = 5
    train_seed: int = 0
    eval_seed: int = 0
    test_only_listed: bool = True
    semantic: bool = False
    retrieval: RetrievalSettings = RetrievalSettings()

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, *, image_size: int) -> ReferenceSettings:
        """Parse ``data.references`` (a mapping, None: off) for a harmonizer of ``image_size`` px."""
        fields = dict(values or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ValueError(f"unknown data.references setting(s) {unknown}; known: {known}")
        semantic = bool(fields.get("semantic", cls.semantic))
        fields["retrieval"] = _resolve_retrieval(fields.get("retrieval"), image_size, semantic=semantic)
        for name in ("train_list", "test_list"):
            if fields.get(name) == "":
                fields[name] = None
        settings = cls(**fields)
        settings._check()
        return settings

    def _check(self) -> None:
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"data.references.crop_fraction must lie in (0, 1], got {self.crop_fraction}")
        if self.crop_tries < 1:
            raise ValueError(f"data.references.crop_tries must be >= 1, got {self.crop_tries}")

    def list_spec(self, split: str) -> str | None:
        """The ``<split>_list`` setting: a path, ``"auto"`` or None."""
        if split not in SPLITS:
            raise ValueError(f"no reference list for split {split!r}; splits: {SPLITS}")
        return self.train_list if split == "train" else self.test_list

    @property
    def needs_pipeline(self) -> bool:
        """Whether the retrieval pipeline must run: an ``auto`` list, or SGF's grids."""
        return self.semantic or any(self.list_spec(split) == AUTO for split in SPLITS)

    @property
    def sgf(self) -> bool:
        """SGF is on: references enabled and semantic grids loaded."""
        return self.enabled and self.semantic


def _resolve_retrieval(values: Any, image_size: int, *, semantic: bool) -> RetrievalSettings:
    """The retrieval settings of ``data.references.retrieval`` with what the setting needs."""
    if isinstance(values, RetrievalSettings):
        settings = values
    else:
        # a mapping without image_size means the harmonizer's size, as image_size: null does
        settings = RetrievalSettings.from_dict({"image_size": None, **dict(values or {})})
    settings = settings.with_image_size(image_size)
    if semantic and not settings.store_composites:
        # SGF reads every composite's grid from the stores: they must be kept
        log.info("semantic grids are on: keeping the composites' feature stores")
        settings = dataclasses.replace(settings, store_composites=True)
    return settings

"""What ``make_composites`` does: the options of ``conf/make_composites.yaml`` as a dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from raiha.composites.appearance import CHANGES

DEFAULT_CHANGES: dict[str, dict[str, float]] = {
    "lab_transfer": {"weight": 1.0},
    "illuminant": {"weight": 1.0, "gain_range": 0.3, "exposure_range": 0.8},
    "tone": {"weight": 1.0, "gamma_range": 1.8, "contrast_range": 0.3, "saturation_range": 0.6},
    "lut": {"weight": 1.0, "size": 3, "strength": 0.12},
}


@dataclass(frozen=True)
class CompositeConfig:
    """Options of the composite maker (see ``conf/make_composites.yaml`` for each one's meaning)."""

    subset: str = "own"
    seed: int = 0
    test_fraction: float = 0.2
    composites_per_object: int = 2
    min_object_fraction: float = 0.01
    max_object_fraction: float = 0.9
    instances: str = "auto"  # auto | true | false
    max_instance_ids: int = 64
    missing_mask: str = "skip"  # skip | error
    unreadable: str = "error"  # error | skip
    jpeg_quality: int = 100
    min_foreground_change: float = 6.0
    max_clipped_fraction: float = 0.05
    max_tries: int = 20
    changes: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_CHANGES))

    def __post_init__(self) -> None:
        # a change given without its ranges takes the defaults'; changes left out are off
        merged = {name: {**DEFAULT_CHANGES.get(name, {}), **dict(spec)} for name, spec in self.changes.items()}
        object.__setattr__(self, "changes", merged)
        _check_choice("instances", str(self.instances).lower(), ("auto", "true", "false"))
        _check_choice("missing_mask", self.missing_mask, ("skip", "error"))
        _check_choice("unreadable", self.unreadable, ("skip", "error"))
        if not self.subset or "_" in self.subset or "/" in self.subset:
            raise ValueError(f"subset={self.subset!r}: a non-empty folder name without '_' or '/'")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction={self.test_fraction}: must be in (0, 1)")
        if self.composites_per_object < 1 or self.max_tries < 1:
            raise ValueError("composites_per_object and max_tries must be >= 1")
        unknown = sorted(set(self.changes) - set(CHANGES))
        if unknown:
            raise ValueError(f"unknown appearance change(s) {unknown}; choose from {list(CHANGES)}")
        if not any(float(spec.get("weight", 0.0)) > 0 for spec in self.changes.values()):
            raise ValueError("every appearance change has weight 0: give at least one a positive weight")
        lut = self.changes.get("lut")
        if lut and not 2 <= int(lut.get("size", 3)) <= 5:
            raise ValueError(f"changes.lut.size={lut.get('size')}: a smooth LUT has 2 to 5 entries a side")

    def weights(self) -> dict[str, float]:
        """Positive weights of the enabled changes, in ``CHANGES`` order."""
        return {
            name: float(self.changes[name].get("weight", 0.0))
            for name in CHANGES
            if name in self.changes and float(self.changes[name].get("weight", 0.0)) > 0
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CompositeConfig:
        """Build from a plain mapping; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown make_composites option(s) {unknown}; known: {sorted(names)}")
        values = dict(values)
        if "changes" in values:
            values["changes"] = {name: dict(spec) for name, spec in dict(values["changes"]).items()}
        if "instances" in values:
            values["instances"] = str(values["instances"]).lower()
        return cls(**values)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: choose one of {choices}")

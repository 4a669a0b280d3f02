"""The configuration of a synthetic harmonization world, and its cache key.

Every field changes what is written, so every field goes into ``cache_key()``
(together with ``FORMAT_VERSION``, bumped whenever the generator's output changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

FORMAT_VERSION = 2  # 2: no single-colour pattern ("core" replaces "solid"), a shared ground
MIN_IMAGE_SIZE = 32
MAX_OBJECTS_PER_SCENE = 5


@dataclasses.dataclass(frozen=True)
class SyntheticWorldConfig:
    """What to generate.

    Args:
        seed: the world's seed; the same config always writes the same bytes.
        image_size: side of the square images in pixels (>= 32).
        num_train: train scenes (their real images form the retrieval gallery).
        num_test: test scenes.
        easy_fraction: share of scenes (per split) whose background holds a twin of the
            foreground object (same identity).
        num_identities: object identities (class + fixed random palette).
        num_illuminants: how many of the fixed, well separated illuminants to use (2-8).
        num_materials: how many of the fixed background materials to use (1-6).
        ground_material: the material of every scene's floor (below the horizon), or
            ``None`` to draw it at random. A surface all scenes share (as sky, road or
            walls are in photos) means that any two scenes under one light can be matched
            on their backgrounds: the retrieval rule's illumination clause can then find
            every relevant reference, and its recall measures the features, not the luck
            of two scenes sharing a material.
        objects_per_scene: inclusive (min, max) number of objects, foreground included;
            min >= 2 so that an easy scene can hold the foreground and its twin.
        shading_strength: amplitude of the scene-wide linear shading gradient.
        composite_light_jitter: the composite's foreground light is a world illuminant
            times a per-channel gain ``exp(U(-j, j))`` drawn per scene (0: exactly one of
            the illuminants). With a continuous foreground light the object's own colours
            no longer tell which light it was shot under, so its intrinsic colour is
            ambiguous without a reference (the ill-posed case the paper targets); the
            background still shows the scene light.
        palette_prior: how identity colours are drawn: ``hsv`` (saturated colours of
            bounded value, the default) or ``log_uniform`` (every channel log-uniform in
            [0.1, 0.6]: any per-channel gain of a palette is about as likely a palette, so
            the object's own colours say nothing about its light; with a jittered composite
            light the hard case is then ill-posed without a reference).
        jpeg_quality: JPEG quality of real and composite images.
    """

    seed: int = 0
    image_size: int = 64
    num_train: int = 1600
    num_test: int = 400
    easy_fraction: float = 0.5
    num_identities: int = 240
    num_illuminants: int = 6
    num_materials: int = 4
    ground_material: int | None = 0
    objects_per_scene: tuple[int, int] = (2, 3)
    shading_strength: float = 0.15
    composite_light_jitter: float = 0.0
    palette_prior: str = "hsv"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        # Hydra/OmegaConf and JSON hand over lists: store a tuple so the config stays hashable.
        object.__setattr__(self, "objects_per_scene", tuple(int(n) for n in self.objects_per_scene))
        self._validate()

    def _validate(self) -> None:
        """Raise ``ValueError`` naming the bad field, its value and the allowed range."""
        from raiha.world.tables import ILLUMINANT_TABLE, MATERIAL_TABLE

        problems: list[str] = []
        if self.image_size < MIN_IMAGE_SIZE:
            problems.append(f"image_size={self.image_size} is below {MIN_IMAGE_SIZE}")
        if self.num_train < 0 or self.num_test < 0 or self.num_train + self.num_test == 0:
            problems.append(
                f"num_train={self.num_train}, num_test={self.num_test}: need >= 0 and at least one scene"
            )
        if self.num_test > 0 and self.num_train == 0:
            problems.append(
                "num_test > 0 needs num_train > 0 (test foregrounds are drawn from the train gallery)"
            )
        if not 0.0 <= self.easy_fraction <= 1.0:
            problems.append(f"easy_fraction={self.easy_fraction} is outside [0, 1]")
        if not 2 <= self.num_illuminants <= len(ILLUMINANT_TABLE):
            problems.append(
                f"num_illuminants={self.num_illuminants} is outside [2, {len(ILLUMINANT_TABLE)}]"
            )
        if not 1 <= self.num_materials <= len(MATERIAL_TABLE):
            problems.append(
                f"num_materials={self.num_materials} is outside [1, {len(MATERIAL_TABLE)}]"
            )
        if self.ground_material is not None and not 0 <= self.ground_material < self.num_materials:
            problems.append(
                f"ground_material={self.ground_material} is outside [0, num_materials={self.num_materials}) "
                "(or null for a random floor)"
            )
        if len(self.objects_per_scene) != 2:
            problems.append(f"objects_per_scene={self.objects_per_scene} must be a (min, max) pair")
        else:
            low, high = self.objects_per_scene
            if not 2 <= low <= high <= MAX_OBJECTS_PER_SCENE:
                problems.append(
                    f"objects_per_scene={self.objects_per_scene} needs 2 <= min <= max <= {MAX_OBJECTS_PER_SCENE}"
                )
            if self.num_identities < high:
                problems.append(
                    f"num_identities={self.num_identities} is below objects_per_scene max {high}"
                )
        if not 0.0 <= self.shading_strength < 1.0:
            problems.append(f"shading_strength={self.shading_strength} is outside [0, 1)")
        if not 0.0 <= self.composite_light_jitter <= 1.0:
            problems.append(
                f"composite_light_jitter={self.composite_light_jitter} is outside [0, 1]"
            )
        from raiha.world.tables import PALETTE_PRIORS

        if self.palette_prior not in PALETTE_PRIORS:
            problems.append(f"palette_prior={self.palette_prior!r} is not one of {PALETTE_PRIORS}")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality={self.jpeg_quality} is outside [1, 100]")
        if problems:
            raise ValueError(
                "invalid SyntheticWorldConfig: " + "; ".join(problems) + "; fix these fields"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists)."""
        fields = dataclasses.asdict(self)
        fields["objects_per_scene"] = list(self.objects_per_scene)
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> SyntheticWorldConfig:
        """Build a config from ``to_dict()`` output (or a Hydra/OmegaConf mapping); unknown keys raise."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"unknown SyntheticWorldConfig fields {unknown}; known fields are {sorted(known)}"
            )
        return cls(**fields)

    def cache_key(self) -> str:
        """A short stable hash of every field and the format version, e.g. ``"s64-3f9a0c12d4"``."""
        payload = json.dumps({"format_version": FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:10]
        return f"s{self.image_size}-{digest}"

"""Plan every scene of a world before anything is drawn: who is where, under which light.

Scheduling (all deterministic in ``cfg.seed``):
- Per split, ``round(easy_fraction * n)`` scenes are easy, in a random order. One
  global scene counter over train then test gives the ids.
- Train foreground identities come from a balanced stream (concatenated random
  permutations of all identities), so every identity is a train foreground
  ``num_train / num_identities`` times (+-1). Its background illuminants cycle
  through all illuminants from a random offset per identity, each light twice in a
  row, so an identity is seen under several lights in the gallery and most train
  composites also have a relevant reference other than their own real image (default
  world: 97% of train, 100% of test composites; every identity under >= 3 lights).
- Distractors come from a second balanced stream, never the scene's foreground identity
  and never repeated within a scene. Easy scenes add a twin (the foreground identity).
- Test foreground identities come from a balanced stream over identities present in
  the train real images; the test background illuminant is drawn among the illuminants
  under which that identity appears in train, so a relevant reference always exists.
- Composite illuminant: uniform among the illuminants other than the background's,
  times per-channel gains ``exp(U(-j, j))`` with ``j = cfg.composite_light_jitter``
  (drawn from a generator of their own, so j = 0 plans exactly the same world).
- Background: a wall and a floor material split at a horizon row in [35%, 65%] of the
  height. The floor is ``cfg.ground_material`` (shared by every scene) and the wall is
  drawn among all materials (so it is the ground material too in ``1 / num_materials``
  of the scenes). With ``ground_material=None`` the floor is drawn too, and with
  probability 1/4 one material fills the image (then wall == floor).
- Layout: square objects; foreground side in [30%, 45%] of the image, others in
  [25%, 45%]; 32 candidate positions per object, the first whose overlap with every
  placed object is <= 10% of the smaller box wins (else the least overlapping one).
  Draw order: distractors, twin, foreground last (so it is fully visible).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from raiha.world.config import SyntheticWorldConfig

SUBSETS: tuple[str, ...] = ("easy", "hard")
SPLITS: tuple[str, ...] = ("train", "test")
SINGLE_MATERIAL_PROBABILITY = 0.25
HORIZON_RANGE = (0.35, 0.65)
FOREGROUND_SIDE_RANGE = (0.30, 0.45)
OBJECT_SIDE_RANGE = (0.25, 0.45)
MAX_OVERLAP = 0.10
PLACEMENT_TRIES = 32


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """One object: its identity and square box ``(x0, y0, x1, y1)`` in pixels (x1, y1 exclusive)."""

    identity: int
    bbox: tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """Everything needed to draw one scene; ``objects`` is in draw order, foreground last."""

    scene_id: int
    split: str
    subset: str
    illuminant: int
    composite_illuminant: int
    materials: tuple[int, int]
    horizon: int
    shading_angle: float
    objects: tuple[ObjectSpec, ...]
    composite_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def foreground(self) -> ObjectSpec:
        return self.objects[-1]

    @property
    def name(self) -> str:
        """Base name of the real image: ``e000123`` / ``h000456``."""
        return f"{self.subset[0]}{self.scene_id:06d}"


class BalancedStream:
    """Draws ids from concatenated random permutations, skipping excluded ids for later."""

    def __init__(self, ids: np.ndarray, rng: np.random.Generator) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._rng = rng
        self._queue: list[int] = []

    def take(self, excluded: frozenset[int] | set[int] = frozenset()) -> int:
        """The next id not in ``excluded`` (that id is removed; skipped ones stay queued)."""
        for _ in range(2):
            for position, identity in enumerate(self._queue):
                if identity not in excluded:
                    return self._queue.pop(position)
            self._queue.extend(int(i) for i in self._rng.permutation(self._ids))
        raise ValueError(f"no identity left outside {sorted(excluded)}; raise num_identities")


def place_objects(
    num_objects: int, image_size: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """Square boxes in draw order (the last one is the foreground's)."""
    boxes: list[tuple[int, int, int, int]] = []
    for index in range(num_objects):
        side_range = FOREGROUND_SIDE_RANGE if index == num_objects - 1 else OBJECT_SIDE_RANGE
        side = max(4, int(round(rng.uniform(*side_range) * image_size)))
        corners = rng.integers(
            0, image_size - side + 1, size=(PLACEMENT_TRIES, 2)
        )  # [T, 2] (x0, y0)
        if boxes:
            placed = np.asarray(boxes)  # [P, 4]
            inter_w = np.minimum(corners[:, None, 0] + side, placed[None, :, 2]) - np.maximum(
                corners[:, None, 0], placed[None, :, 0]
            )
            inter_h = np.minimum(corners[:, None, 1] + side, placed[None, :, 3]) - np.maximum(
                corners[:, None, 1], placed[None, :, 1]
            )
            inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)  # [T, P]
            placed_area = (placed[:, 2] - placed[:, 0]) * (placed[:, 3] - placed[:, 1])  # [P]
            overlap = (inter / np.minimum(placed_area, side * side)[None, :]).max(axis=1)  # [T]
            good = np.flatnonzero(overlap <= MAX_OVERLAP)
            choice = int(good[0]) if good.size else int(np.argmin(overlap))
        else:
            choice = 0
        x0, y0 = (int(v) for v in corners[choice])
        boxes.append((x0, y0, x0 + side, y0 + side))
    return boxes


def _scene_background(
    cfg: SyntheticWorldConfig, rng: np.random.Generator
) -> tuple[tuple[int, int], int, float]:
    """``(wall, floor)`` materials, horizon row and shading angle of one scene."""
    wall = int(rng.integers(cfg.num_materials))
    if cfg.ground_material is not None:
        floor = cfg.ground_material
    else:
        single = rng.uniform() < SINGLE_MATERIAL_PROBABILITY
        floor = wall if single else int(rng.integers(cfg.num_materials))
    horizon = int(round(rng.uniform(*HORIZON_RANGE) * cfg.image_size))
    return (wall, floor), horizon, float(rng.uniform(0.0, 2.0 * np.pi))


def composite_gains(cfg: SyntheticWorldConfig, scene_id: int) -> tuple[float, float, float]:
    """Per-channel multipliers of scene ``scene_id``'s composite light (ones without jitter)."""
    if cfg.composite_light_jitter == 0.0:
        return (1.0, 1.0, 1.0)
    rng = np.random.default_rng([cfg.seed, 3, scene_id])
    log_gains = rng.uniform(-cfg.composite_light_jitter, cfg.composite_light_jitter, size=3)
    return tuple(float(g) for g in np.exp(log_gains))  # type: ignore[return-value]


def _subset_order(count: int, easy_fraction: float, rng: np.random.Generator) -> list[str]:
    num_easy = int(round(easy_fraction * count))
    labels = np.asarray(["easy"] * num_easy + ["hard"] * (count - num_easy))
    return [str(label) for label in rng.permutation(labels)]


def plan_world(cfg: SyntheticWorldConfig) -> list[SceneSpec]:
    """All scenes of ``cfg``'s world: train scenes first, then test scenes."""
    rng = np.random.default_rng([cfg.seed, 1])
    num_lights = cfg.num_illuminants
    all_ids = np.arange(cfg.num_identities)
    distractor_stream = BalancedStream(all_ids, rng)
    light_offset = rng.integers(num_lights, size=cfg.num_identities)
    foreground_count = np.zeros(cfg.num_identities, dtype=np.int64)
    train_lights: dict[int, set[int]] = defaultdict(set)  # identity -> lights seen in train reals
    scenes: list[SceneSpec] = []
    splits = [("train", cfg.num_train), ("test", cfg.num_test)]
    for split, count in splits:
        subsets = _subset_order(count, cfg.easy_fraction, rng)
        if split == "train":
            foreground_stream = BalancedStream(all_ids, rng)
        else:
            foreground_stream = BalancedStream(np.asarray(sorted(train_lights)), rng)
        for subset in subsets:
            foreground = foreground_stream.take()
            if split == "train":
                light = int(
                    (light_offset[foreground] + foreground_count[foreground] // 2) % num_lights
                )
                foreground_count[foreground] += 1
            else:
                light = int(rng.choice(sorted(train_lights[foreground])))
            composite_light = int((light + rng.integers(1, num_lights)) % num_lights)
            num_objects = int(rng.integers(cfg.objects_per_scene[0], cfg.objects_per_scene[1] + 1))
            twins = [foreground] if subset == "easy" else []
            in_scene = {foreground}
            distractors: list[int] = []
            for _ in range(num_objects - 1 - len(twins)):
                distractors.append(distractor_stream.take(in_scene))
                in_scene.add(distractors[-1])
            identities = [*distractors, *twins, foreground]
            scene_id = len(scenes)
            scene_rng = np.random.default_rng([cfg.seed, 2, scene_id])
            materials, horizon, angle = _scene_background(cfg, scene_rng)
            boxes = place_objects(len(identities), cfg.image_size, scene_rng)
            scenes.append(
                SceneSpec(
                    scene_id=scene_id,
                    split=split,
                    subset=subset,
                    illuminant=light,
                    composite_illuminant=composite_light,
                    materials=materials,
                    horizon=horizon,
                    shading_angle=angle,
                    objects=tuple(ObjectSpec(i, b) for i, b in zip(identities, boxes, strict=True)),
                    composite_gains=composite_gains(cfg, scene_id),
                )
            )
            if split == "train":
                for identity in identities:
                    train_lights[identity].add(light)
    return scenes

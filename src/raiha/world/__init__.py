"""The built-in synthetic harmonization world: procedural scenes in the iHarmony4 layout.

Background materials with fixed albedos, hundreds of object identities (class + own
palette), a fixed set of illuminants. Real = all lit by the background illuminant;
composite = the foreground object relit by another; subsets ``easy`` (a twin of the
foreground is in the background) and ``hard`` (none). See the submodules for details:
``config`` (what to generate), ``world`` (catalogue), ``plan`` (scheduling, layout),
``render`` (drawing), ``generate`` (files on disk), ``ground_truth`` (labels, relevance).
"""

from __future__ import annotations

from raiha.world.catalogue import Catalogue, build_catalogue
from raiha.world.config import FORMAT_VERSION, SyntheticWorldConfig
from raiha.world.generate import WORLD_FILE, ensure_world, generate_world, world_root
from raiha.world.ground_truth import (
    load_ground_truth,
    relevant_reference_table,
    relevant_references,
    scene_paths,
)
from raiha.world.plan import SPLITS, SUBSETS, ObjectSpec, SceneSpec, plan_world
from raiha.world.render import RenderedScene, relight, render_scene, shading_field
from raiha.world.tables import ILLUMINANT_TABLE, MATERIAL_TABLE

__all__ = [
    "FORMAT_VERSION",
    "ILLUMINANT_TABLE",
    "MATERIAL_TABLE",
    "SPLITS",
    "SUBSETS",
    "WORLD_FILE",
    "Catalogue",
    "ObjectSpec",
    "RenderedScene",
    "SceneSpec",
    "SyntheticWorldConfig",
    "build_catalogue",
    "ensure_world",
    "generate_world",
    "load_ground_truth",
    "plan_world",
    "relevant_reference_table",
    "relevant_references",
    "relight",
    "render_scene",
    "scene_paths",
    "shading_field",
    "world_root",
]

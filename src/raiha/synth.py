"""Generate a synthetic harmonization world: ``python -m raiha.synth --out DIR [options]``.

``--out DIR`` writes the world exactly at DIR (replacing it atomically);
``--data-dir DIR`` uses the cache ``DIR/synthetic/<cache_key>`` and reuses a complete one.
Prints the root, counts per subset and split, retrieval coverage and the time taken.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from raiha.world import WORLD_FILE, SyntheticWorldConfig, ensure_world, generate_world
from raiha.world.tables import PALETTE_PRIORS

_DEFAULTS = SyntheticWorldConfig()


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (one per config field, defaults from ``SyntheticWorldConfig``)."""
    parser = argparse.ArgumentParser(
        prog="python -m raiha.synth", description=__doc__.splitlines()[0]
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write the world exactly here")
    target.add_argument("--data-dir", type=Path, help="cache under DIR/synthetic/<cache_key>")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--image-size", type=int, default=_DEFAULTS.image_size)
    parser.add_argument("--num-train", type=int, default=_DEFAULTS.num_train)
    parser.add_argument("--num-test", type=int, default=_DEFAULTS.num_test)
    parser.add_argument("--easy-fraction", type=float, default=_DEFAULTS.easy_fraction)
    parser.add_argument("--num-identities", type=int, default=_DEFAULTS.num_identities)
    parser.add_argument("--num-illuminants", type=int, default=_DEFAULTS.num_illuminants)
    parser.add_argument("--num-materials", type=int, default=_DEFAULTS.num_materials)
    parser.add_argument(
        "--ground-material",
        type=lambda text: None if text.lower() in ("none", "null") else int(text),
        default=_DEFAULTS.ground_material,
        help="material index of every floor, or 'none' for random floors",
    )
    parser.add_argument(
        "--objects-per-scene",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(_DEFAULTS.objects_per_scene),
    )
    parser.add_argument("--shading-strength", type=float, default=_DEFAULTS.shading_strength)
    parser.add_argument(
        "--composite-light-jitter",
        type=float,
        default=_DEFAULTS.composite_light_jitter,
        help="per-channel log-gain range of the composite's foreground light (0: discrete lights)",
    )
    parser.add_argument("--palette-prior", choices=PALETTE_PRIORS, default=_DEFAULTS.palette_prior)
    parser.add_argument("--jpeg-quality", type=int, default=_DEFAULTS.jpeg_quality)
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``argv``, generate the world, print a summary; returns the world's root."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fields = {key: value for key, value in vars(args).items() if key not in ("out", "data_dir")}
    try:
        cfg = SyntheticWorldConfig(**fields)
    except ValueError as error:
        build_parser().error(str(error))
    start = time.perf_counter()
    root = (
        generate_world(args.out, cfg) if args.out is not None else ensure_world(args.data_dir, cfg)
    )
    seconds = time.perf_counter() - start
    world = json.loads((root / WORLD_FILE).read_text(encoding="utf-8"))
    print(f"root: {root}")
    print(f"cache_key: {world['cache_key']}")
    print("counts: " + ", ".join(f"{name} {count}" for name, count in world["counts"].items()))
    print("coverage: " + json.dumps(world["coverage"]))
    print(f"time: {seconds:.1f} s")
    return root


if __name__ == "__main__":
    main()

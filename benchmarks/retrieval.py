"""Benchmark: indexed vs brute-force retrieval on a synthetic gallery; prints ONE JSON line.

    python benchmarks/retrieval.py --gallery 1000 --queries 50 --grid 32
    python benchmarks/retrieval.py --gallery 10000 --grid 16 --brute-queries 3

The synthetic gallery imitates dense ViT features (documented in the JSON as ``data``):
``concepts`` unit prototypes sharing a common direction (weight ``shared``), each image
shows ``concepts_per_image`` of them in rectangular blocks (objects), each patch is its concept plus isotropic noise of
norm ``noise`` (same-concept patches then have cosine ~ 1 / (1 + noise^2)). Appearance:
non-negative, peaked 108-bin "histograms", one tone per (concept, image lighting).
Queries are noisy copies of gallery images (that image is the excluded "own real image"),
with a square foreground; each query also plants copies of one fg and one bg patch into
3 other gallery images, so true matches exist. The store is a real on-disk FeatureStore
(fp16 shards, memory-mapped); brute force scans it all, the index filters then verifies.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from raiha.retrieval.feature_store import FeatureStore, FeatureStoreWriter
from raiha.retrieval.patch_index import PatchIndex, PatchIndexConfig, indexed_search
from raiha.retrieval.search import (
    RetrievalConfig,
    RetrievalQuery,
    brute_force_search,
    prepare_query,
)


class SyntheticWorld:
    """Deterministic per-image features: image ``i`` can be regenerated at any time."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.patches = args.grid * args.grid
        generator = torch.Generator().manual_seed(args.seed)
        shared = F.normalize(torch.randn(args.dim, generator=generator), dim=0)
        self.concepts = F.normalize(
            args.shared * shared
            + F.normalize(torch.randn(args.concepts, args.dim, generator=generator), dim=-1),
            dim=-1,
        )
        self.tones = F.normalize(
            torch.rand(args.tones, args.hsv_dim, generator=generator) ** 8, dim=-1
        )  # [T, D]
        rows = max(1, int(args.concepts_per_image**0.5))
        cols = -(-args.concepts_per_image // rows)
        cell = torch.arange(args.grid)
        block = (cell[:, None] * rows // args.grid) * cols + (
            cell[None, :] * cols // args.grid
        )  # [G, G]
        self.layout = block.clamp(max=args.concepts_per_image - 1).reshape(
            -1
        )  # [L] concept slot per patch

    def image(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Content ``[L, C]`` and appearance ``[L, D]`` of gallery image ``index`` (float32, unit rows)."""
        args = self.args
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + index + 1)
        shown = torch.randint(args.concepts, (args.concepts_per_image,), generator=generator)
        lighting = int(torch.randint(args.tones, (1,), generator=generator))
        picks = shown[self.layout]  # [L]: each concept fills one block of the image
        noise = (
            F.normalize(torch.randn(self.patches, args.dim, generator=generator), dim=-1)
            * args.noise
        )
        content = F.normalize(self.concepts[picks] + noise, dim=-1)  # [L, C]
        tone = self.tones[(picks + lighting) % args.tones]  # [L, D]
        appearance = F.normalize(
            tone + 0.02 * torch.rand(self.patches, args.hsv_dim, generator=generator), dim=-1
        )
        return content, appearance


def make_queries(
    world: SyntheticWorld, args: argparse.Namespace
) -> tuple[list[RetrievalQuery], dict[int, list]]:
    """Queries plus the patches they plant: ``plants[image] = [(position, content, appearance)]``."""
    generator = torch.Generator().manual_seed(args.seed + 7)
    grid, queries, plants = args.grid, [], {}
    side = max(1, grid // 4)
    for source in torch.randperm(args.gallery, generator=generator)[: args.queries].tolist():
        content, appearance = world.image(source)
        content = F.normalize(
            content + 0.1 * F.normalize(torch.randn(content.shape, generator=generator), dim=-1),
            dim=-1,
        )
        top, left = torch.randint(grid - side + 1, (2,), generator=generator).tolist()
        fg = torch.zeros(grid, grid, dtype=torch.bool)
        fg[top : top + side, left : left + side] = True
        flat_fg = fg.reshape(-1)
        fg_patch = int(torch.nonzero(flat_fg)[0])
        bg_patch = int(torch.nonzero(~flat_fg)[0])
        for target in torch.randint(args.gallery, (3,), generator=generator).tolist():
            for patch in (fg_patch, bg_patch):
                position = int(torch.randint(world.patches, (1,), generator=generator))
                plants.setdefault(target, []).append((position, content[patch], appearance[patch]))
        queries.append(
            RetrievalQuery(
                content.reshape(grid, grid, -1),
                appearance.reshape(grid, grid, -1),
                fg,
                (f"gallery/{source}.jpg",),
            )
        )
    return queries, plants


def build_store(
    folder: Path, world: SyntheticWorld, plants: dict[int, list], args: argparse.Namespace
) -> FeatureStore:
    names = [f"gallery/{i}.jpg" for i in range(args.gallery)]
    key = {"synthetic": vars(args)}
    writer = FeatureStoreWriter(
        folder,
        key=key,
        image_paths=names,
        grid_size=(args.grid, args.grid),
        content_dim=args.dim,
        appearance_dim=args.hsv_dim,
        shard_size=256,
    )
    for shard in writer.pending_shards():
        indices = range(shard * 256, min((shard + 1) * 256, args.gallery))
        contents, appearances = [], []
        for index in indices:
            content, appearance = world.image(index)
            for position, planted_content, planted_appearance in plants.get(index, []):
                content[position], appearance[position] = planted_content, planted_appearance
            contents.append(content)
            appearances.append(appearance)
        writer.write_shard(
            shard, torch.stack(contents), torch.stack(appearances), [names[i] for i in indices]
        )
    return writer.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument(
        "--brute-queries",
        type=int,
        default=3,
        help="queries also run by brute force (timed, compared)",
    )
    parser.add_argument("--grid", type=int, default=32)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--hsv-dim", type=int, default=108)
    parser.add_argument("--concepts", type=int, default=512)
    parser.add_argument("--concepts-per-image", type=int, default=6)
    parser.add_argument("--tones", type=int, default=64)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--shared", type=float, default=0.3)
    parser.add_argument("--content-clusters", type=int, default=1024)
    parser.add_argument("--appearance-clusters", type=int, default=256)
    parser.add_argument(
        "--max-refs", type=int, default=None, help="per-query cap (best-first early stop)"
    )
    parser.add_argument(
        "--store", type=Path, default=None, help="store folder (default: a temporary one)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    world = SyntheticWorld(args)
    queries, plants = make_queries(world, args)
    with tempfile.TemporaryDirectory(prefix="raiha-retrieval-bench-") as tmp:
        start = time.perf_counter()
        store = build_store(args.store or Path(tmp) / "store", world, plants, args)
        store_s = time.perf_counter() - start
        start = time.perf_counter()
        index = PatchIndex.build(
            store,
            PatchIndexConfig(
                content_clusters=args.content_clusters, appearance_clusters=args.appearance_clusters
            ),
        )
        index_s = time.perf_counter() - start
        config = RetrievalConfig(max_refs=args.max_refs)

        indexed, filter_s, candidate_counts = [], 0.0, []
        start = time.perf_counter()
        for query in queries:
            tick = time.perf_counter()
            candidate_counts.append(
                len(index.candidates(prepare_query(query), config, store.image_paths))
            )
            filter_s += time.perf_counter() - tick
            indexed.append(indexed_search(query, store, index, config))
        indexed_s = (
            time.perf_counter() - start - filter_s
        )  # candidates were computed twice: count once
        start = time.perf_counter()
        brute = [
            brute_force_search(query, store, config) for query in queries[: args.brute_queries]
        ]
        brute_s = time.perf_counter() - start

    count = len(queries)
    indexed_ms = 1000 * indexed_s / count
    brute_ms = 1000 * brute_s / max(1, len(brute))
    verify_ms = max(0.0, indexed_ms - 1000 * filter_s / count)
    scale = (
        1024 / world.patches
    )  # to the paper's 32 x 32 grid: filter ~ query patches, verify ~ patch pairs
    result = {
        "benchmark": "retrieval",
        "gallery_images": args.gallery,
        "queries": count,
        "brute_force_queries": len(brute),
        "grid": [args.grid, args.grid],
        "content_dim": args.dim,
        "appearance_dim": args.hsv_dim,
        "indexed_ms_per_query": round(indexed_ms, 2),
        "indexed_filter_ms_per_query": round(1000 * filter_s / count, 2),
        "brute_force_ms_per_query": round(brute_ms, 2),
        "speedup": round(brute_ms / indexed_ms, 1),
        "agreement": sum(a == b for a, b in zip(indexed, brute)) / max(1, len(brute)),
        "max_refs": args.max_refs,
        "candidate_fraction": round(sum(candidate_counts) / (count * args.gallery), 4),
        "refs_per_query": round(sum(len(r) for r in indexed) / count, 2),
        "store_bytes_per_image": store.bytes_per_image,
        "index_bytes_per_image": round(index.nbytes / args.gallery),
        "index_build_s": round(index_s, 1),
        "store_build_s": round(store_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "torch_threads": torch.get_num_threads(),
        "data": {
            k: getattr(args, k)
            for k in ("concepts", "concepts_per_image", "tones", "noise", "shared", "seed")
        },
    }
    if world.patches != 1024:
        brute_32 = brute_ms * scale**2
        indexed_32 = 1000 * filter_s / count * scale + verify_ms * scale**2
        result["extrapolated_32x32"] = {
            "brute_force_ms_per_query": round(brute_32),
            "indexed_ms_per_query": round(indexed_32),
            "speedup": round(brute_32 / indexed_32, 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

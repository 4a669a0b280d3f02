"""Benchmark: batched vs indexed vs brute-force retrieval on synthetic galleries; ONE JSON line per size.

    python benchmarks/retrieval.py --galleries 1000,2000 --queries 20 --brute-queries 1 --device cpu
    python benchmarks/retrieval.py --galleries 2000,5000,10000,20000 --device cuda
    python benchmarks/retrieval.py --gallery 1000 --queries 50 --grid 32 --compare-fp16
    python benchmarks/retrieval.py --compression fp16   # uncompressed (default auto: pca_int8)

Per size: queries per second of the batched search
(:class:`~raiha.retrieval.search.batched.BatchedSearcher`, all queries), of today's
per-query indexed search (all queries, CPU) and of the brute force on ``--device`` (the
first ``--brute-queries``), their ratios, ``agreement`` (batched == brute force, must be
1.0), the candidate fraction, bytes per gallery image / composite and peak memory. The
last line adds ``full_scale_estimate`` (candidate fraction fitted as a power of the
gallery size over the measured sizes). Without a GPU, ``h200_estimate`` derives the GPU
time from the measured candidate counts and the FLOP per pair (labelled an estimate).

The synthetic gallery imitates dense ViT features (documented in the JSON as ``data``):
``concepts`` unit prototypes sharing a common direction (weight ``shared``), each image
shows ``concepts_per_image`` of them in rectangular blocks (objects), each patch is its concept plus isotropic noise of
norm ``noise`` (same-concept patches then have cosine ~ 1 / (1 + noise^2)). Appearance:
non-negative, peaked 108-bin "histograms", one tone per (concept, image lighting).
Queries are noisy copies of gallery images (that image is the excluded "own real image"),
with a square foreground; each query also plants copies of one fg and one bg patch into
3 other gallery images, so true matches exist. The store is a real on-disk FeatureStore
(compressed as ``--compression`` says, memory-mapped); brute force scans it all, the index
filters then verifies; both see the same stored features and compressed queries.
``--compare-fp16`` also retrieves every query from the uncompressed fp16 features
(regenerated on the fly, exact via an index) and reports how much the lists changed.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from raiha.retrieval.features.query import RetrievalQuery
from raiha.retrieval.search.batched import BatchedSearchConfig, BatchedSearcher, resolve_device
from raiha.retrieval.search.patch_index import PatchIndex, PatchIndexConfig, indexed_search
from raiha.retrieval.search.rule import (
    PreparedQuery,
    RetrievalConfig,
    RetrievedRef,
    brute_force_search,
    prepare_query,
    query_for_gallery,
    score_images,
    score_indices,
    select_refs,
)
from raiha.retrieval.store.compression import CompressionConfig, PcaFitter, resolve_compression
from raiha.retrieval.store.feature_store import FeatureStore, FeatureStoreWriter
from raiha.retrieval.store.gallery import GalleryFeatures

SHARD = 256
FULL_QUERIES, FULL_GALLERY = 7_404 + 65_742, 65_742  # iHarmony4: test + train composites, gallery
H200_HALF_TFLOPS, H200_FP32_TFLOPS = (
    790.0,
    67.0,
)  # dense peaks (the figures; fp32 non-tensor)


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


class WorldGallery:
    """The gallery (with plants) as an fp16 store would hold it, generated on demand."""

    def __init__(self, world: SyntheticWorld, plants: dict[int, list], count: int) -> None:
        self.world, self.plants, self.count = world, plants, count
        self.image_paths = [f"gallery/{i}.jpg" for i in range(count)]
        self.grid_size = (world.args.grid, world.args.grid)
        self._last: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.count

    def image(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Content ``[L, C]`` and appearance ``[L, D]`` (float32) with the planted patches."""
        content, appearance = self.world.image(index)
        for position, planted_content, planted_appearance in self.plants.get(index, []):
            content[position], appearance[position] = planted_content, planted_appearance
        return content, appearance

    def rows(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``[n, L, C]`` and ``[n, L, D]``; the last block is cached (read twice)."""
        key = tuple(int(i) for i in indices)
        if self._last is None or self._last[0] != key:
            images = [self.image(i) for i in key]
            content = torch.stack([c for c, _ in images])  # [n, L, C]
            self._last = (key, content, torch.stack([a for _, a in images]))
        return self._last[1], self._last[2]

    def content_rows(self, indices: Sequence[int]) -> torch.Tensor:
        return self.rows(indices)[0].half()

    def appearance_rows(self, indices: Sequence[int]) -> torch.Tensor:
        return self.rows(indices)[1].half()


def build_store(
    folder: Path, gallery: WorldGallery, args: argparse.Namespace, compression: CompressionConfig
) -> FeatureStore:
    key = {"synthetic": {k: v for k, v in vars(args).items() if k != "store"}}
    writer = FeatureStoreWriter(
        folder, key=key, image_paths=gallery.image_paths, grid_size=gallery.grid_size,
        content_dim=args.dim, appearance_dim=args.hsv_dim, shard_size=SHARD, compression=compression,
    )  # fmt: skip
    if writer.compressor is None:  # pca: fit on every cell of fit_images seeded images
        fitter = PcaFitter(args.dim)
        generator = torch.Generator().manual_seed(compression.seed)
        picks = torch.randperm(args.gallery, generator=generator)[: compression.fit_images]
        for index in picks.sort().values.tolist():
            fitter.add(gallery.image(index)[0].half())  # the fp16 features an extractor returns
        writer.set_compressor(fitter.compressor(compression))
    for shard in writer.pending_shards():
        indices = range(shard * SHARD, min((shard + 1) * SHARD, args.gallery))
        content, appearance = gallery.rows(indices)
        writer.write_shard(shard, content.half(), appearance.half(), writer.shard_inputs(shard))
    return writer.finish()


COMPARED = {  # the paper's rule and the two "inconsistent illumination" ablations
    "paper": RetrievalConfig(),
    "illumination_0.7_0.8": RetrievalConfig(eps_a_range=(0.7, 0.8)),
    "illumination_0.8_0.9": RetrievalConfig(eps_a_range=(0.8, 0.9)),
}


def compared_lists(
    gallery: GalleryFeatures, index: PatchIndex, queries: list[RetrievalQuery]
) -> tuple[dict[str, list[list[RetrievedRef]]], list[PreparedQuery]]:
    """Exact lists of every query under each ``COMPARED`` rule (the union of their candidates
    is scored once; every rule gates with eps_c = 0.7), and the prepared queries."""
    lists: dict[str, list[list[RetrievedRef]]] = {name: [] for name in COMPARED}
    prepared_queries = []
    for query in queries:
        prepared = prepare_query(query_for_gallery(query, gallery), gallery.grid_size)
        parts = [index.filter(prepared, rule, gallery.image_paths)[0] for rule in COMPARED.values()]
        candidates = torch.unique(torch.cat(parts))  # [n] ascending
        content, illumination = score_indices(prepared, gallery, candidates.tolist(), 0.7)
        for name, rule in COMPARED.items():
            lists[name].append(
                select_refs(
                    candidates,
                    content,
                    illumination,
                    gallery.image_paths,
                    rule,
                    prepared.exclude_paths,
                )  # fmt: skip
            )
        prepared_queries.append(prepared)
    return lists, prepared_queries


def list_changes(compressed: list[list[RetrievedRef]], exact: list[list[RetrievedRef]]) -> dict:
    """Jaccard, recall and precision of the compressed reference lists against the fp16 ones."""
    sets = [({r.index for r in a}, {r.index for r in b}) for a, b in zip(compressed, exact)]
    jaccards = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in sets]
    count = max(1, len(exact))
    return {
        "mean_jaccard": round(sum(jaccards) / count, 4),
        "min_jaccard": round(min(jaccards, default=1.0), 4),
        "identical_sets": round(sum(j == 1.0 for j in jaccards) / count, 4),
        "identical_ranked_lists": round(
            sum([r.index for r in a] == [r.index for r in b] for a, b in zip(compressed, exact))
            / count,
            4,
        ),
        "recall_of_fp16_refs": round(
            sum(len(a & b) for a, b in sets) / max(1, sum(len(b) for _, b in sets)), 4
        ),
        "precision_vs_fp16": round(
            sum(len(a & b) for a, b in sets) / max(1, sum(len(a) for a, _ in sets)), 4
        ),
        "fp16_refs_per_query": round(sum(len(b) for _, b in sets) / count, 2),
        "compressed_refs_per_query": round(sum(len(a) for a, _ in sets) / count, 2),
    }


def score_changes(
    spaces: list[tuple[GalleryFeatures, list[PreparedQuery]]], lists: list[dict[str, list]]
) -> dict:
    """Max and mean |score change| (compressed - fp16) over the images listed in either space."""
    content_diffs, illumination_diffs = [], []
    for query in range(len(spaces[0][1])):
        images = sorted(
            {r.index for found in lists for rule in found.values() for r in rule[query]}
        )
        if not images:
            continue
        (content_a, illumination_a), (content_b, illumination_b) = (
            score_indices(prepared[query], gallery, images, 0.7) for gallery, prepared in spaces
        )
        content_diffs.append((content_a - content_b).abs())
        finite = illumination_a.isfinite() & illumination_b.isfinite()
        illumination_diffs.append((illumination_a - illumination_b)[finite].abs())
    content, illumination = (
        torch.cat(content_diffs or [torch.zeros(1)]),
        torch.cat(illumination_diffs or [torch.zeros(1)]),
    )
    return {
        "images": int(content.numel()),
        "content_score_abs_diff_mean": round(float(content.mean()), 4),
        "content_score_abs_diff_max": round(float(content.max()), 4),
        "illumination_score_abs_diff_mean": round(
            float(illumination.mean()) if illumination.numel() else 0.0, 4
        ),
        "illumination_score_abs_diff_max": round(
            float(illumination.max()) if illumination.numel() else 0.0, 4
        ),
    }


def compare_with_fp16(
    store: FeatureStore, index: PatchIndex, world: WorldGallery, index_config: PatchIndexConfig,
    queries: list[RetrievalQuery],
) -> dict:  # fmt: skip
    """How much compression changes the lists and scores, per ``COMPARED`` rule."""
    start = time.perf_counter()
    compressed, compressed_prepared = compared_lists(store, index, queries)
    exact, exact_prepared = compared_lists(world, PatchIndex.build(world, index_config), queries)
    result: dict = {name: list_changes(compressed[name], exact[name]) for name in COMPARED}
    result["scores"] = score_changes(
        [(store, compressed_prepared), (world, exact_prepared)], [compressed, exact]
    )
    result["queries"], result["seconds"] = len(queries), round(time.perf_counter() - start, 1)
    return result


def folder_bytes(folder: Path, pattern: str) -> int:
    return sum(path.stat().st_size for path in folder.glob(pattern))


def device_brute_force(
    query: RetrievalQuery, gallery: GalleryFeatures, config: RetrievalConfig, device: torch.device
) -> list[RetrievedRef]:
    """:func:`brute_force_search` with every block scored on ``device`` (the same on CPU)."""
    prepared = prepare_query(query_for_gallery(query, gallery), gallery.grid_size)
    if device.type == "cpu":
        return brute_force_search(query, gallery, config)
    on_device = PreparedQuery(
        prepared.fg_content.to(device), prepared.bg_content.to(device),
        prepared.bg_appearance.to(device), prepared.exclude_paths,
    )  # fmt: skip
    content, illumination = [], []
    for start in range(0, len(gallery), 16):
        block = list(range(start, min(start + 16, len(gallery))))
        c, a = score_images(
            on_device, gallery.content_rows(block).to(device),
            gallery.appearance_rows(block).to(device), config.eps_c,
        )  # fmt: skip
        content.append(c.cpu())
        illumination.append(a.cpu())
    indices = torch.arange(len(gallery))
    return select_refs(
        indices, torch.cat(content), torch.cat(illumination), gallery.image_paths, config,
        prepared.exclude_paths,
    )  # fmt: skip


def pair_gflop(args: argparse.Namespace, content_dim: int, fg_cells: int) -> tuple[float, float]:
    """GFLOP of scoring one (query, gallery image) pair (fg and bg content, bg appearance),
    and of its content clause alone (fg content)."""
    patches = args.grid * args.grid
    bg_cells = patches - fg_cells
    content = 2 * patches * fg_cells * content_dim / 1e9
    return content + 2 * patches * bg_cells * (content_dim + args.hsv_dim) / 1e9, content


def gpu_estimate(
    candidates: float, scored: float, verified: float, gflop: float, content_gflop: float
) -> dict:
    """Milliseconds on an H200 from the measured pair counts (an estimate, not measured): the
    content pass over the candidates and the full fp16 scoring at half the fp16 dense peak,
    verified pairs in fp32 at half the fp32 peak."""
    half_flop = candidates * content_gflop + scored * gflop
    half_s = half_flop * 1e9 / (H200_HALF_TFLOPS / 2 * 1e12)
    exact_s = verified * gflop * 1e9 / (H200_FP32_TFLOPS / 2 * 1e12)
    return {
        "estimate": True,
        "assumes": f"fp16 at {H200_HALF_TFLOPS / 2:g}, fp32 at {H200_FP32_TFLOPS / 2:g} TFLOP/s",
        "ms_per_query": round(1000 * (half_s + exact_s), 3),
    }


def fit_full_scale(rows: list[dict], args: argparse.Namespace) -> dict:
    """Candidate fraction ~ a * N^b fitted on the measured sizes (constant with one size),
    then the full job's (73,146 queries over 65,742 images) time from per-pair costs."""
    sizes = torch.tensor([float(r["gallery_images"]) for r in rows]).log()
    fractions = torch.tensor([max(r["candidate_fraction"], 1e-6) for r in rows]).log()
    slope = 0.0
    if len(rows) > 1:
        slope = float(((sizes - sizes.mean()) * (fractions - fractions.mean())).sum()
                      / ((sizes - sizes.mean()) ** 2).sum())  # fmt: skip
    last = rows[-1]
    fraction = min(
        1.0, last["candidate_fraction"] * (FULL_GALLERY / last["gallery_images"]) ** slope
    )
    pairs = FULL_QUERIES * FULL_GALLERY * fraction
    verified_share = last["verified_per_query"] / max(1e-9, last["candidates_per_query"])
    scored_share = last["scored_per_query"] / max(1e-9, last["candidates_per_query"])
    batched_pair_s = last["batched_s_per_query"] / max(1e-9, last["candidates_per_query"])
    brute_pair_s = last["brute_force_s_per_query"] / last["gallery_images"]
    result = {
        "queries": FULL_QUERIES, "gallery_images": FULL_GALLERY,
        "candidate_fraction_slope": round(slope, 3), "candidate_fraction": round(fraction, 4),
        "batched_hours_this_device": round(pairs * batched_pair_s / 3600, 1),
        "brute_force_hours_this_device": round(FULL_QUERIES * FULL_GALLERY * brute_pair_s / 3600, 1),
    }  # fmt: skip
    gflop = last["pair_gflop"]
    gpu = gpu_estimate(
        pairs, pairs * scored_share, pairs * verified_share, gflop, last["content_pair_gflop"]
    )
    result["h200_hours_estimate"] = round(gpu["ms_per_query"] / 1000 / 3600, 2)
    result["h200_brute_force_hours_estimate"] = round(
        FULL_QUERIES * FULL_GALLERY * gflop * 1e9 / (H200_HALF_TFLOPS / 2 * 1e12) / 3600, 2
    )
    return result


def run_size(args: argparse.Namespace, size: int, device: torch.device) -> dict:
    """Build a ``size``-image store and index, search it every way, return the JSON row."""
    args = argparse.Namespace(**{**vars(args), "gallery": size})
    grid = (args.grid, args.grid)
    compression = resolve_compression(args.compression, grid, args.dim, args.hsv_dim)
    compression = replace(compression, fit_images=args.fit_images)
    if args.compressed_dim is not None:
        compression = replace(compression, content_dim=args.compressed_dim)
    world = SyntheticWorld(args)
    queries, plants = make_queries(world, args)
    gallery = WorldGallery(world, plants, args.gallery)
    index_config = PatchIndexConfig(
        content_clusters=args.content_clusters, appearance_clusters=args.appearance_clusters,
        joint_clusters=args.joint_clusters,
    )  # fmt: skip
    config = RetrievalConfig(max_refs=args.max_refs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="raiha-retrieval-bench-") as tmp:
        start = time.perf_counter()
        store = build_store(args.store or Path(tmp) / "store", gallery, args, compression)
        store_s = time.perf_counter() - start
        disk_bytes = folder_bytes(store.folder, "*_0*.npy")
        start = time.perf_counter()
        index = PatchIndex.build(store, index_config, device=device)
        index_s = time.perf_counter() - start

        start = time.perf_counter()
        indexed = [indexed_search(query, store, index, config) for query in queries]
        indexed_s = time.perf_counter() - start
        searcher = BatchedSearcher(
            store, index, device=device,
            config=BatchedSearchConfig(
                query_batch=args.query_batch, precision=args.precision,
                content_first=not args.no_content_first,
            ),
        )  # fmt: skip
        start = time.perf_counter()
        batched = searcher.search_batch(queries, config)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        brute = [
            device_brute_force(query, store, config, device)
            for query in queries[: args.brute_queries]
        ]
        brute_s = time.perf_counter() - start
        comparison = None
        if args.compare_fp16 and compression.quantises:
            comparison = compare_with_fp16(store, index, gallery, index_config, queries)

    count, stats = len(queries), searcher.stats
    batched_q, brute_q = batched_s / count, brute_s / max(1, len(brute))
    fg_cells = max(1, args.grid // 4) ** 2
    gflop, content_gflop = pair_gflop(args, store.content_dim, fg_cells)
    result = {
        "benchmark": "retrieval", "device": str(device), "precision": "half" if searcher.half else "exact",
        "gallery_images": args.gallery, "queries": count, "brute_force_queries": len(brute),
        "query_batch": args.query_batch, "grid": list(grid), "fg_cells": fg_cells,
        "content_dim": args.dim, "appearance_dim": args.hsv_dim,
        "compression": compression.to_dict(), "stored_content_dim": store.content_dim,
        "batched_queries_per_s": round(1 / batched_q, 3),
        "indexed_queries_per_s": round(count / indexed_s, 3),
        "brute_force_queries_per_s": round(1 / brute_q, 4),
        "batched_vs_brute_force": round(brute_q / batched_q, 1),
        "batched_vs_indexed": round(indexed_s / batched_s, 2),
        "agreement": sum(a == b for a, b in zip(batched, brute)) / max(1, len(brute)),
        "agreement_with_indexed": sum(a == b for a, b in zip(batched, indexed)) / count,
        "batched_s_per_query": round(batched_q, 4), "brute_force_s_per_query": round(brute_q, 3),
        "candidate_fraction": round(stats["candidates"] / (count * args.gallery), 4),
        "candidates_per_query": round(stats["candidates"] / count, 2),
        "scored_per_query": round(stats["scored"] / count, 2),
        "verified_per_query": round(stats["verified"] / count, 2),
        "refs_per_query": round(sum(len(r) for r in batched) / count, 2),
        "max_refs": args.max_refs, "pair_gflop": round(gflop, 3),
        "content_pair_gflop": round(content_gflop, 4),
        "store_bytes_per_image": store.bytes_per_image,
        "store_disk_bytes_per_image": round(disk_bytes / args.gallery),
        "composite_bytes": args.grid * args.grid * (args.dim + args.hsv_dim) * 2,
        "basis_bytes": 0 if store.compressor.basis is None else store.compressor.basis.numel() * 4,
        "pca_kept_energy": (store.manifest.get("basis") or {}).get("kept_energy"),
        "index_bytes_per_image": round(index.nbytes / args.gallery),
        "index_build_s": round(index_s, 1), "store_build_s": round(store_s, 1),
        "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_device_mb": round(torch.cuda.max_memory_allocated(device) / 2**20)
        if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "data": {
            k: getattr(args, k)
            for k in ("concepts", "concepts_per_image", "tones", "noise", "shared", "seed")
        },
    }  # fmt: skip
    if device.type != "cuda":
        candidates = stats["candidates"] / count
        result["h200_estimate"] = gpu_estimate(
            candidates, stats["scored"] / count, stats["verified"] / count, gflop, content_gflop
        )
    if comparison is not None:
        result["vs_fp16"] = comparison
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--galleries", default="1000", help="comma-separated gallery sizes, one JSON line each")
    add("--gallery", type=int, default=None, help="one gallery size (overrides --galleries)")
    add("--queries", type=int, default=50)
    add(
        "--brute-queries",
        type=int,
        default=3,
        help="queries also run by brute force (timed, compared)",
    )
    add(
        "--device",
        default="cpu",
        help="cpu, cuda or auto: where the batched and brute-force search run",
    )
    add("--precision", default="auto", help="batched search: auto, exact or half")
    add("--query-batch", type=int, default=32)
    add("--no-content-first", action="store_true", help="batched: skip the content-clause pass")
    add("--joint-clusters", type=int, default=0, help="patch index: joint postings (0: none)")
    add("--grid", type=int, default=32)
    add("--dim", type=int, default=768)
    add("--hsv-dim", type=int, default=108)
    add("--concepts", type=int, default=512)
    add("--concepts-per-image", type=int, default=6)
    add("--tones", type=int, default=64)
    add("--noise", type=float, default=0.6)
    add("--shared", type=float, default=0.3)
    add("--content-clusters", type=int, default=1024)
    add("--appearance-clusters", type=int, default=256)
    add("--max-refs", type=int, default=None, help="per-query cap (best-first early stop)")
    add("--compression", default="auto", help="auto, fp16, pca_int8 or random_int8, optionally :k")
    add("--compressed-dim", type=int, default=None, help="k (overrides ':k' of --compression)")
    add("--fit-images", type=int, default=256, help="pca_int8: images fitting the projection")
    add("--compare-fp16", action="store_true", help="also retrieve from fp16 features, compare")
    add("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=1, help="torch threads (1: steady timings on shared CPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = [args.gallery] if args.gallery else [int(s) for s in args.galleries.split(",")]
    rows: list[dict] = []
    for size in sizes:
        rows.append(run_size(args, size, device))
        if size == sizes[-1]:
            rows[-1]["full_scale_estimate"] = fit_full_scale(rows, args)
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()

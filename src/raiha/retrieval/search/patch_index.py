"""An exact candidate filter for the retrieval rule: spherical clusters + per-image radii.

Build: spherical k-means centroids ``mu_k`` on a sample of gallery patches (content and,
separately, appearance). Every gallery patch goes to its nearest centroid; for each
(image r, cluster k) present, the index stores one posting with the largest angle
``R_rk`` between a patch of r in k and ``mu_k``.

Search: for unit vectors, angles obey the triangle inequality, so for a query patch q
and any patch c of r in cluster k: ``angle(q, c) >= angle(q, mu_k) - R_rk``, hence
``cos(q, c) <= cos(max(0, angle(q, mu_k) - R_rk))``. An image can only pass a clause
``cos >= t`` if some posting satisfies ``min_i angle(q_i, mu_k) - R_rk <= arccos(t)``.
The three necessary conditions (fg content >= eps_c; bg content >= eps_c; bg appearance
>= lo of the illumination range) give the candidates, which are then scored exactly
(:func:`raiha.retrieval.search.rule.score_indices`), so results equal the brute-force scan.
Rounding is covered by a margin ``ROUNDING_MARGIN`` on every cosine (over-approximation
only). How many images are pruned depends on how clustered the features are.

Joint postings (``joint_clusters > 0``) cluster each bg-side patch as one unit vector
``[c / |c|, a / |a|] / sqrt(2)``: its cosine to a query row built the same way is
``(cos_c + cos_a) / 2``, so the illumination clause (one pair with ``cos_c >= eps_c`` and
``cos_a >= lo``) needs a joint cosine ``>= (eps_c + lo) / 2`` on a single patch, a
necessary condition the two separate clusterings cannot express (they may be met by two
different patches). It keeps the bounds tight where the separate ones are loose, e.g. on
compressed (``pca_int8``) stores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from raiha.io.atomic_io import atomic_write
from raiha.retrieval.features.query import RetrievalQuery, normalise_path
from raiha.retrieval.search.rule import (
    PreparedQuery,
    RetrievalConfig,
    RetrievedRef,
    prepare_query,
    query_for_gallery,
    score_indices,
    select_refs,
)
from raiha.retrieval.search.spherical_kmeans import sample_patches, spherical_kmeans
from raiha.retrieval.store.gallery import GalleryFeatures

ROUNDING_MARGIN = 1e-5  # added to every computed cosine in the filter (fp32 dot error is ~1e-6)


@dataclass(frozen=True)
class PatchIndexConfig:
    """Index size and k-means settings (more clusters: tighter radii, more postings)."""

    content_clusters: int = 1024
    appearance_clusters: int = 256
    kmeans_iterations: int = 10
    kmeans_sample: int = 65536
    block_size: int = 64
    seed: int = 0
    joint_clusters: int = 0


def joint_rows(content: Tensor, appearance: Tensor) -> Tensor:
    """Unit ``[..., C + D]`` rows ``[c, a] / sqrt(2)`` of unit content and appearance rows."""
    return torch.cat([content, appearance], dim=-1) * (0.5**0.5)


def _angles(cosines: Tensor) -> Tensor:
    """``arccos`` in float64, clamped to ``[-1, 1]``."""
    return torch.arccos(cosines.double().clamp(-1.0, 1.0))


@dataclass
class Postings:
    """One clustering of the gallery: centroids ``[K, D]`` and postings (image, cluster, radius)."""

    centroids: Tensor
    image_ids: Tensor  # [P] int32
    cluster_ids: Tensor  # [P] int16 or int32
    radii: Tensor  # [P] float32, radians, rounded up

    def upper_bounds(self, query_rows: Tensor, num_images: int) -> Tensor:
        """float64 ``[N]``: per image, an upper bound of ``max_{i, j} cos(query_i, patch_j)`` (+ margin)."""
        best_cos = (query_rows @ self.centroids.T).amax(dim=0) + ROUNDING_MARGIN  # [K]
        closest_angle = _angles(best_cos)  # [K] lower bound of min_i angle(q_i, mu_k)
        gap = (closest_angle[self.cluster_ids.long()] - self.radii.double()).clamp(min=0.0)  # [P]
        bounds = torch.full((num_images,), -math.inf, dtype=torch.float64)
        bounds.scatter_reduce_(
            0, self.image_ids.long(), torch.cos(gap) + ROUNDING_MARGIN, reduce="amax"
        )
        return bounds  # [N]

    def images_within(self, query_rows: Tensor, threshold: float, num_images: int) -> Tensor:
        """bool ``[N]``: images that may hold a patch with cos >= ``threshold`` to some query row."""
        return self.upper_bounds(query_rows, num_images) >= threshold

    @property
    def nbytes(self) -> int:
        tensors = (self.centroids, self.image_ids, self.cluster_ids, self.radii)
        return sum(t.numel() * t.element_size() for t in tensors)


def _block_postings(
    centroids: Tensor, first_image: int, rows: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Postings ``(image_ids, cluster_ids, radii)`` of normalised rows ``[n, L, D]`` of images ``first_image...``."""
    nearest_cos, nearest = (rows @ centroids.T).max(dim=-1)  # [n, L], [n, L]
    angle = _angles(nearest_cos - ROUNDING_MARGIN).float()  # [n, L], rounded up
    # the float32 cast must never round an angle down
    angle = torch.nextafter(angle, torch.full_like(angle, math.inf))
    table = torch.full((rows.shape[0], centroids.shape[0]), -1.0, device=rows.device)  # [n, K]
    table.scatter_reduce_(1, nearest, angle, reduce="amax", include_self=True)  # -1: cluster absent
    image, cluster = torch.nonzero(table >= 0, as_tuple=True)  # [p], [p]
    cluster_dtype = torch.int16 if centroids.shape[0] < 2**15 else torch.int32
    radii = table[image, cluster]
    return (image + first_image).int().cpu(), cluster.to(cluster_dtype).cpu(), radii.cpu()


class PatchIndex:
    """Content and appearance postings of a gallery; see the module docstring."""

    def __init__(
        self,
        content: Postings,
        appearance: Postings,
        num_images: int,
        config: PatchIndexConfig,
        joint: Postings | None = None,
    ) -> None:
        self.content = content
        self.appearance = appearance
        self.joint = joint
        self.num_images = num_images
        self.config = config

    @property
    def postings(self) -> dict[str, Postings]:
        """Every clustering by name (``content``, ``appearance`` and ``joint`` when built)."""
        named = {"content": self.content, "appearance": self.appearance}
        return named if self.joint is None else {**named, "joint": self.joint}

    @classmethod
    def build(
        cls,
        gallery: GalleryFeatures,
        config: PatchIndexConfig | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> PatchIndex:
        """Cluster a sample of patches, then scan the gallery once to write the postings.

        Args:
            gallery: the features to index.
            config: index size and k-means settings.
            device: where clustering and assignment run (a GPU speeds up large galleries).
        """
        config = config or PatchIndexConfig()
        device = torch.device(device or "cpu")
        generator = torch.Generator().manual_seed(config.seed)
        count = len(gallery)
        if count == 0:
            raise ValueError("cannot index an empty gallery")
        samples = sample_patches(gallery, config.kmeans_sample, config.block_size, generator)
        cluster_counts = [config.content_clusters, config.appearance_clusters]
        if config.joint_clusters > 0:  # the sample's content and appearance rows are aligned
            samples = (*samples, joint_rows(*samples))
            cluster_counts.append(config.joint_clusters)
        centroids = [
            spherical_kmeans(sample.to(device), clusters, config.kmeans_iterations, generator)
            for sample, clusters in zip(samples, cluster_counts)
        ]
        parts: list[list] = [[] for _ in centroids]
        for start in range(0, count, config.block_size):
            block = list(range(start, min(start + config.block_size, count)))
            rows = [
                F.normalize(read(block).to(device).float(), dim=-1)  # [n, L, D]
                for read in (gallery.content_rows, gallery.appearance_rows)
            ]
            if len(centroids) == 3:
                rows.append(joint_rows(*rows))  # [n, L, C + D]
            for kind, kind_rows in enumerate(rows):
                parts[kind].append(_block_postings(centroids[kind], start, kind_rows))
        postings = [
            Postings(centroids[kind].cpu(), *(torch.cat([p[f] for p in part]) for f in range(3)))
            for kind, part in enumerate(parts)
        ]
        return cls(
            postings[0], postings[1], count, config, postings[2] if len(postings) == 3 else None
        )

    def filter(
        self, query: PreparedQuery, config: RetrievalConfig, paths: list[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Candidates (ascending indices ``[n]``, a superset of the valid refs) and upper bounds ``[n]`` of their content scores."""
        low, _ = config.eps_a_bounds
        content_bounds = self.content.upper_bounds(query.fg_content, self.num_images)  # [N]
        keep = content_bounds >= config.eps_c
        keep &= self.content.images_within(
            query.bg_content, config.eps_c, self.num_images
        )
        keep &= self.appearance.images_within(query.bg_appearance, low, self.num_images)
        if self.joint is not None:
            rows = joint_rows(query.bg_content, query.bg_appearance)  # [B, C + D]
            joint_threshold = (config.eps_c + low) / 2
            keep &= self.joint.images_within(rows, joint_threshold, self.num_images)
        candidates = torch.nonzero(keep).flatten()  # [n]
        if paths is not None and query.exclude_paths:
            allowed = [
                normalise_path(paths[i]) not in query.exclude_paths for i in candidates.tolist()
            ]
            candidates = candidates[torch.tensor(allowed, dtype=torch.bool)]
        return candidates, content_bounds[candidates]

    def candidates(
        self, query: PreparedQuery, config: RetrievalConfig, paths: list[str] | None = None
    ) -> Tensor:
        """Sorted indices ``[n]`` of the images that may satisfy the rule (a superset of the valid ones)."""
        return self.filter(query, config, paths)[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the index in memory (centroids and postings)."""
        return sum(postings.nbytes for postings in self.postings.values())

    def save(self, path: str | Path) -> Path:
        """Write the index to one safetensors file (atomically)."""
        tensors = {
            f"{kind}.{name}": getattr(postings, name).contiguous()
            for kind, postings in self.postings.items()
            for name in ("centroids", "image_ids", "cluster_ids", "radii")
        }
        metadata = {"num_images": str(self.num_images), "config": json.dumps(asdict(self.config))}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    @classmethod
    def load(cls, path: str | Path) -> PatchIndex:
        """Read an index written by :meth:`save`."""
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        fields = ("centroids", "image_ids", "cluster_ids", "radii")
        parts = {
            kind: Postings(*(tensors[f"{kind}.{n}"] for n in fields))
            for kind in ("content", "appearance", "joint")
            if f"{kind}.centroids" in tensors
        }
        return cls(
            parts["content"],
            parts["appearance"],
            int(metadata["num_images"]),
            PatchIndexConfig(**json.loads(metadata["config"])),
            parts.get("joint"),
        )


def indexed_search(
    query: RetrievalQuery,
    gallery: GalleryFeatures,
    index: PatchIndex,
    config: RetrievalConfig | None = None,
    *,
    block_size: int = 16,
) -> list[RetrievedRef]:
    """The rule through the index: filter candidates, score them exactly; equals :func:`brute_force_search`.

    With ``max_refs``, candidates are scored best content bound first and the scan stops once
    ``max_refs`` valid refs all have a content score above every remaining bound.
    """
    config = config or RetrievalConfig()
    if index.num_images != len(gallery):
        raise ValueError(
            f"the index covers {index.num_images} images but the gallery has {len(gallery)}; rebuild the index"
        )
    prepared = prepare_query(query_for_gallery(query, gallery), gallery.grid_size)
    candidates, bounds = index.filter(prepared, config, gallery.image_paths)
    if config.max_refs is None:
        content_scores, illumination_scores = score_indices(
            prepared, gallery, candidates.tolist(), config.eps_c, block_size
        )
        return select_refs(
            candidates,
            content_scores,
            illumination_scores,
            gallery.image_paths,
            config,
            prepared.exclude_paths,
        )
    order = torch.argsort(bounds, descending=True, stable=True)
    candidates, bounds = candidates[order], bounds[order]  # best bound first
    # scored so far: indices, content scores, illumination scores
    scored: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    refs: list[RetrievedRef] = []
    for start in range(0, len(candidates), block_size):
        block = candidates[start : start + block_size]
        content_scores, illumination_scores = score_indices(
            prepared, gallery, block.tolist(), config.eps_c, block_size
        )
        for part, values in zip(scored, (block, content_scores, illumination_scores)):
            part.append(values)
        indices, all_content, all_illumination = (torch.cat(part) for part in scored)
        refs = select_refs(
            indices,
            all_content,
            all_illumination,
            gallery.image_paths,
            config,
            prepared.exclude_paths,
        )
        next_start = start + block_size
        if (
            len(refs) == config.max_refs
            and next_start < len(candidates)
            and refs[-1].content_score > float(bounds[next_start])
        ):
            break
    return refs

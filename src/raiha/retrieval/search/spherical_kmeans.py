"""Spherical k-means (k-means++ seeding) and the patch sample it is trained on."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from raiha.retrieval.store.gallery import GalleryFeatures

MIN_PATCHES_PER_IMAGE = 8  # the sample takes few patches from many images


def spherical_kmeans(
    vectors: Tensor, clusters: int, iterations: int, generator: torch.Generator
) -> Tensor:
    """Unit centroids ``[K, D]`` of unit ``vectors`` ``[n, D]``: k-means++ seeding, max-cosine Lloyd."""
    clusters = min(clusters, vectors.shape[0])
    first = int(torch.randint(vectors.shape[0], (1,), generator=generator))
    chosen = [first]
    distance = (1.0 - vectors @ vectors[first]).clamp(min=0.0)  # [n]: 1 - cos to nearest seed
    for _ in range(clusters - 1):
        weights = distance.cpu().double()
        if float(weights.sum()) <= 0.0:  # fewer distinct vectors than clusters
            weights = torch.ones_like(weights)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(pick)
        distance = torch.minimum(distance, (1.0 - vectors @ vectors[pick]).clamp(min=0.0))
    centroids = vectors[chosen].clone()  # [K, D]
    for _ in range(iterations):
        assignment = (vectors @ centroids.T).argmax(dim=1)  # [n]
        sums = torch.zeros_like(centroids).index_add_(0, assignment, vectors)  # [K, D]
        counts = torch.bincount(assignment, minlength=clusters)  # [K]
        empty = (counts == 0).cpu()
        if empty.any():  # re-seed empty clusters with random points
            reseed = torch.randint(vectors.shape[0], (int(empty.sum()),), generator=generator)
            sums[empty.to(sums.device)] = vectors[reseed.to(vectors.device)]
        centroids = F.normalize(sums, dim=-1)
    return centroids


def sample_patches(
    gallery: GalleryFeatures, sample_size: int, block_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Normalised k-means training patches (content ``[S, C]``, appearance ``[S, D]``).

    Spread over as many images as possible (at least ``MIN_PATCHES_PER_IMAGE`` each): a
    concept missing from the sample lands far from every centroid, which inflates radii.
    """
    count, patches = len(gallery), gallery.grid_size[0] * gallery.grid_size[1]
    per_image = max(MIN_PATCHES_PER_IMAGE, math.ceil(sample_size / count))
    per_image = min(per_image, patches)
    images = torch.randperm(count, generator=generator)[: math.ceil(sample_size / per_image)]
    images = images.sort().values.tolist()
    picked: tuple[list[Tensor], list[Tensor]] = ([], [])
    for start in range(0, len(images), block_size):
        block = images[start : start + block_size]
        choice = torch.rand(len(block), patches, generator=generator).argsort(dim=1)[:, :per_image]
        for kind, rows in enumerate((gallery.content_rows(block), gallery.appearance_rows(block))):
            chosen = torch.gather(rows, 1, choice[:, :, None].expand(-1, -1, rows.shape[-1]))
            picked[kind].append(chosen.reshape(-1, rows.shape[-1]))  # [n * per_image, D]
    return tuple(F.normalize(torch.cat(part).float(), dim=-1) for part in picked)  # type: ignore[return-value]

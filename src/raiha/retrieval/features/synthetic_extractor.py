"""Weight-free dense content features for the built-in synthetic world (extractor ``synthetic``).

The world draws ``pixel = albedo * light * shading`` (``raiha.world.render``), so
the difference of log colours across an edge *inside one object* is the log ratio of its
two palette colours: it identifies the object whatever the light. Four stages:

1. **Scene light and background.** The background materials and the lights are a fixed,
   seed-independent catalogue (``MATERIAL_TABLE``, ``ILLUMINANT_TABLE``). On a subsampled
   grid every (light, material) pair predicts each pixel; the light that explains most
   pixels wins, then the two materials that explain most under it. A pixel is background
   when its colour matches one of them *at that position* (materials are fixed images):
   chromaticity within ``chroma_tolerance``, brightness within ``brightness_tolerance``
   (the shading is at most +-15 %). The rest, cleaned by a 3 x 3 opening, are objects.
2. **Colour contrasts inside objects.** Pixel pairs ``offset`` apart along x and along y,
   both inside the eroded object mask, give ``delta = log(p2 + e) - log(p1 + e)`` with
   ``e = log_offset * scene light`` (exact for objects lit by the scene light; the
   composite's relit foreground only sees the offset change). Pairs weaker than
   ``edge_low`` or not a local maximum along their direction (one pair per edge) are
   dropped; each cell sums ``w * delta delta^T`` (a 3 x 3 structure tensor, blind to the
   sign of ``delta`` and to the edge's orientation).
3. **Receptive field and signature.** Like a ViT token, a cell sees its 3 x 3
   neighbourhood (weights ``(1, 2, 1) x (1, 2, 1)``). The neighbourhood's mean tensor is
   ``d d^T`` for one two-colour object: its top eigenvector times the root of its
   eigenvalue is the object's signature ``+-d`` (``palette_signature`` of the world).
   Cells with little evidence (``min_contrast`` .. ``full_contrast`` pairs) fade to zero,
   and cells whose tensor is not rank one (second eigenvalue above ``mixed_ratio`` of
   the first: two objects, or an object against a mis-explained background) are zero:
   they would match arbitrary objects. The signature is embedded by ``cos(W d)`` (random
   Fourier features of a Gaussian kernel of width ``contrast_sigma``, even in ``d``).
4. **Output.** ``[signature part * presence, material_weight * material part]`` where
   presence rises with the object pixels around the cell, and the material part (only in
   cells without a single object pixel, so a foreground cell never matches through the
   background it touches) embeds the mean log albedo of the cell's background pixels
   (which material, which part of its pattern; illumination invariant by construction).

Measured on the default world's test split (``python -m raiha.retrieve``, eps_c 0.7,
eps_a 0.9): see ``experiments/retrieval_synthetic.md``. Limits: two identities whose
palettes differ by a per-channel factor would be indistinguishable (the world keeps
signatures >= 0.25 apart for that reason); objects smaller than about two cells give few
pure cells.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.registry import register_extractor
from raiha.world.tables import ILLUMINANT_TABLE, MATERIAL_TABLE, material_albedo

CONTEXT_WEIGHTS = (1.0, 2.0, 1.0)  # separable 3 x 3 receptive field on the cell grid
BACKGROUND_MIN_FRACTION = 0.2  # cells with less explained background get no material part


def _min_pool(maps: Tensor, size: int) -> Tensor:
    return -F.max_pool2d(-maps, size, stride=1, padding=size // 2)


def _max_pool(maps: Tensor, size: int) -> Tensor:
    return F.max_pool2d(maps, size, stride=1, padding=size // 2)


def _context(cells: Tensor) -> Tensor:
    """Sum over each cell's 3 x 3 neighbourhood with ``CONTEXT_WEIGHTS`` (zero padded)."""
    weights = torch.tensor(CONTEXT_WEIGHTS, device=cells.device, dtype=cells.dtype)
    kernel = (weights[:, None] * weights[None]).expand(cells.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(cells, (1, 1, 1, 1)), kernel.contiguous(), groups=cells.shape[1])


@register_extractor("synthetic")
class SyntheticWorldExtractor(DenseFeatureExtractor):
    """Illumination-invariant cell features of synthetic-world images (see the module docstring).

    Args:
        cell_size: pixels per grid cell (8: the 1/8 grid of the harmonizer).
        contrast_features: random Fourier features of a cell's colour-ratio signature.
        contrast_sigma: kernel width on signatures (identities lie >= 0.25 apart).
        offset: pixel distance of the compared pairs (default ``max(2, round(H / 16))``).
        log_offset: ``e`` in ``log(x + e)``, times the scene light (tames dark channels).
        edge_low, edge_high: a pair's weight ramps from 0 to 1 between these ``|delta|``.
        min_contrast, full_contrast: contrast mass (pairs) at which a cell starts to count
            and counts fully.
        mixed_ratio: a cell whose second structure-tensor eigenvalue exceeds this share of
            the first holds several colour pairs and gets no signature.
        presence: object-pixel fraction of the neighbourhood giving full presence.
        material_features: random Fourier features (cos + sin) of the mean log albedo.
        material_sigma: kernel width on the mean log albedo.
        material_weight: scale of the material part against the unit contrast part.
        chroma_tolerance, brightness_tolerance: how close a pixel must be to a material's
            predicted log colour (chromaticity norm, mean log) to count as background.
        material_min_fraction: a material must explain this share of the image to be used.
        seed: seed of the random projections.
    """

    def __init__(
        self,
        *,
        cell_size: int = 8,
        contrast_features: int = 128,
        contrast_sigma: float = 0.055,
        offset: int | None = None,
        log_offset: float = 0.03,
        edge_low: float = 0.25,
        edge_high: float = 0.4,
        min_contrast: float = 1.5,
        full_contrast: float = 3.0,
        mixed_ratio: float = 0.03,
        presence: float = 0.05,
        material_features: int = 32,
        material_sigma: float = 0.05,
        material_weight: float = 0.25,
        chroma_tolerance: float = 0.06,
        brightness_tolerance: float = 0.22,
        material_min_fraction: float = 0.08,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not edge_low < edge_high or not min_contrast < full_contrast:
            raise ValueError(
                f"synthetic extractor needs edge_low < edge_high and min_contrast < full_contrast, "
                f"got {edge_low}, {edge_high}, {min_contrast}, {full_contrast}"
            )
        self._config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.cell_size = cell_size
        self.offset = offset
        self.log_offset = log_offset
        self.edge_low, self.edge_high = edge_low, edge_high
        self.min_contrast, self.full_contrast = min_contrast, full_contrast
        self.presence = presence
        self.mixed_ratio = mixed_ratio
        self.material_weight = material_weight
        self.chroma_tolerance, self.brightness_tolerance = chroma_tolerance, brightness_tolerance
        self.material_min_fraction = material_min_fraction
        generator = torch.Generator().manual_seed(seed)
        contrast = torch.randn(contrast_features, 3, generator=generator) / contrast_sigma
        material = torch.randn(material_features, 3, generator=generator) / material_sigma
        lights = np.stack([light.rgb for light in ILLUMINANT_TABLE])  # [K, 3]
        self.register_buffer("contrast_projection", contrast)  # [M, 3]
        self.register_buffer("material_projection", material)  # [Mm, 3]
        self.register_buffer("light_rgb", torch.from_numpy(lights).float())  # [K, 3]
        self.feature_dim = contrast_features + 2 * material_features
        self._albedo: dict[tuple[int, int, str], Tensor] = {}
        self.requires_grad_(False)
        self.eval()

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def grid_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if height < self.cell_size or width < self.cell_size:
            raise ValueError(
                f"synthetic extractor: image {height}x{width} is smaller than one {self.cell_size}-px cell"
            )
        return (height // self.cell_size, width // self.cell_size)

    def albedo(self, height: int, width: int, device: torch.device) -> Tensor:
        """The material albedo images at this size, ``[Mt, 3, H, W]`` (cached)."""
        key = (height, width, str(device))
        if key not in self._albedo:
            side = max(height, width)
            maps = [material_albedo(i, side)[:height, :width] for i in range(len(MATERIAL_TABLE))]
            stacked = torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2)  # [Mt, 3, H, W]
            self._albedo[key] = stacked.contiguous().to(device)
        return self._albedo[key]

    def _matches(self, log_pixels: Tensor, predicted: Tensor) -> tuple[Tensor, Tensor]:
        """Whether pixels fit predicted colours (channel dim -3) and how far: ``ok``, ``distance``."""
        eps = 1.0 / 128
        log_predicted = torch.log(predicted.clamp(max=1.0) + eps)
        chroma = log_pixels - log_pixels.mean(-3, keepdim=True)
        chroma_predicted = log_predicted - log_predicted.mean(-3, keepdim=True)
        difference = chroma - chroma_predicted
        chroma_gap = (difference * difference).sum(-3).sqrt()  # faster than norm on strided dims
        brightness_gap = (log_pixels.mean(-3) - log_predicted.mean(-3)).abs()
        ok = (chroma_gap < self.chroma_tolerance) & (brightness_gap < self.brightness_tolerance)
        return ok, chroma_gap + brightness_gap

    def explain_background(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """Material index per pixel ``[B, H, W]`` (-1: object) and the scene light index ``[B]``."""
        batch, _, height, width = pixels.shape
        log_pixels = torch.log(pixels + 1.0 / 128)  # [B, 3, H, W]
        albedo = self.albedo(height, width, pixels.device)  # [Mt, 3, H, W]
        stride = max(1, height // 16)
        sub_pixels = log_pixels[:, None, None, :, ::stride, ::stride]  # [B, 1, 1, 3, h', w']
        sub_predicted = (
            albedo[None, :, :, ::stride, ::stride] * self.light_rgb[:, None, :, None, None]
        )  # [K, Mt, 3, h', w']
        ok, _ = self._matches(sub_pixels, sub_predicted[None])  # [B, K, Mt, h', w']
        light = ok.any(dim=2).float().mean(dim=(-1, -2)).argmax(dim=1)  # [B]
        shares = ok[torch.arange(batch, device=pixels.device), light].float().mean(dim=(-1, -2))
        top = shares.topk(min(2, shares.shape[1]), dim=1)  # wall and floor: [B, 2]
        predicted = albedo[top.indices] * self.light_rgb[light][:, None, :, None, None]
        ok, distance = self._matches(log_pixels[:, None], predicted)  # [B, 2, H, W]
        ok &= (top.values >= self.material_min_fraction)[:, :, None, None]
        distance = torch.where(ok, distance, torch.full_like(distance, math.inf))
        nearest = distance.argmin(dim=1, keepdim=True)  # [B, 1, H, W]
        material = top.indices[:, :, None, None].expand(-1, -1, height, width)
        material = material.gather(1, nearest)[:, 0]  # [B, H, W]
        explained = ok.any(dim=1)
        return torch.where(explained, material, torch.full_like(material, -1)), light

    def _cell_index(self, height: int, width: int, device: torch.device) -> Tensor:
        """Flat cell index of every pixel, ``[H, W]``."""
        grid_h, grid_w = self.grid_size((height, width))
        rows = torch.arange(height, device=device) * grid_h // height
        cols = torch.arange(width, device=device) * grid_w // width
        return rows[:, None] * grid_w + cols[None]

    def contrast_tensors(self, pixels: Tensor, inner: Tensor, light: Tensor) -> tuple[Tensor, Tensor]:
        """Per-cell sums of ``w * delta delta^T`` over in-object pairs ``[B, 9, h, w]`` and their mass ``[B, 1, h, w]``."""
        batch, _, height, width = pixels.shape
        grid_h, grid_w = self.grid_size((height, width))
        offset = self.offset or max(2, round(height / 16))
        floor = self.log_offset * self.light_rgb[light][:, :, None, None]  # [B, 3, 1, 1]
        log_pixels = torch.log(pixels + floor)  # [B, 3, H, W]
        smooth = torch.tensor([0.25, 0.5, 0.25], device=pixels.device)
        cell_index = self._cell_index(height, width, pixels.device)
        tensors = torch.zeros(batch * grid_h * grid_w, 9, device=pixels.device)
        mass = torch.zeros(batch * grid_h * grid_w, device=pixels.device)
        for dy, dx in ((0, offset), (offset, 0)):
            # blur across the direction only: less noise, same edge sharpness
            kernel = smooth.view(1, 1, 3, 1) if dx else smooth.view(1, 1, 1, 3)
            padding = (0, 0, 1, 1) if dx else (1, 1, 0, 0)
            blurred = F.conv2d(
                F.pad(log_pixels, padding, mode="replicate"), kernel.expand(3, 1, -1, -1), groups=3
            )  # [B, 3, H, W]
            delta = blurred[:, :, dy:, dx:] - blurred[:, :, : height - dy, : width - dx]
            magnitude = (delta * delta).sum(dim=1).sqrt()  # [B, H - dy, W - dx]
            inside = inner[:, : height - dy, : width - dx] & inner[:, dy:, dx:]
            weight = ((magnitude - self.edge_low) / (self.edge_high - self.edge_low)).clamp(0, 1)
            if dx:
                neighbour = torch.maximum(
                    F.pad(magnitude[:, :, :-1], (1, 0)), F.pad(magnitude[:, :, 1:], (0, 1))
                )
            else:
                neighbour = torch.maximum(
                    F.pad(magnitude[:, :-1], (0, 0, 1, 0)), F.pad(magnitude[:, 1:], (0, 0, 0, 1))
                )
            weight = weight * inside * (magnitude >= neighbour - 1e-6)  # one pair per edge
            image, row, col = torch.nonzero(weight > 0, as_tuple=True)  # [n] each
            pair_weight = weight[image, row, col]  # [n]
            pair_delta = delta[image, :, row, col]  # [n, 3]
            outer = (pair_delta[:, :, None] * pair_delta[:, None, :]).reshape(-1, 9)  # [n, 9]
            middle = cell_index[(row + dy // 2), (col + dx // 2)]  # the pair's midpoint cell
            target = image * grid_h * grid_w + middle
            # float32 sums: under bf16 autocast (retrieval.extraction_precision) these are bf16
            tensors.index_add_(0, target, (outer * pair_weight[:, None]).float())
            mass.index_add_(0, target, pair_weight.float())
        tensors = tensors.view(batch, grid_h, grid_w, 9).permute(0, 3, 1, 2)  # [B, 9, h, w]
        return tensors.contiguous(), mass.view(batch, 1, grid_h, grid_w)

    def signature_cells(self, tensors: Tensor, mass: Tensor) -> Tensor:
        """Embedded colour-ratio signature of each cell ``[B, M, h, w]`` (zero where mixed or weak).

        The mean of ``delta delta^T`` over a cell's pairs is ``d d^T`` for one two-colour
        object (rank one); its top eigenvector scaled by the root of its eigenvalue is
        ``+-d``. A second eigenvalue above ``mixed_ratio`` of the first means several
        colour pairs (two objects, or an object against a mis-explained background).
        """
        mean = tensors / mass.clamp(min=1e-6)  # [B, 9, h, w]
        mean = mean.permute(0, 2, 3, 1).reshape(*mean.shape[:1], *mean.shape[2:], 3, 3).double()
        jitter = 1e-9 * torch.eye(3, dtype=mean.dtype, device=mean.device)
        values, vectors = torch.linalg.eigh(mean + jitter)  # ascending: [B, h, w, 3], [B, h, w, 3, 3]
        signature = (vectors[..., 2] * values[..., 2:3].clamp(min=0).sqrt()).float()  # [B, h, w, 3]
        pure = values[..., 1] <= self.mixed_ratio * values[..., 2]  # [B, h, w]
        embedded = torch.cos(signature @ self.contrast_projection.T)  # [B, h, w, M], even in +-d
        strength = ((mass[:, 0] - self.min_contrast) / (self.full_contrast - self.min_contrast)).clamp(0, 1)
        embedded = F.normalize(embedded, dim=-1) * (pure & (strength > 0))[..., None] * strength[..., None]
        return embedded.permute(0, 3, 1, 2)  # [B, M, h, w]

    def material_cells(self, material: Tensor) -> Tensor:
        """Embedded mean log albedo of each cell's background pixels, ``[B, 2Mm, h, w]``."""
        batch, height, width = material.shape
        grid = self.grid_size((height, width))
        albedo = torch.log(self.albedo(height, width, material.device) + 1.0 / 128)  # [Mt, 3, H, W]
        rows = torch.arange(height, device=material.device)[:, None]
        cols = torch.arange(width, device=material.device)[None]
        pixel_albedo = albedo[material.clamp(min=0), :, rows, cols]  # [B, H, W, 3]
        explained = (material >= 0).float()  # [B, H, W]
        weighted = (pixel_albedo * explained[..., None]).permute(0, 3, 1, 2)  # [B, 3, H, W]
        share = F.adaptive_avg_pool2d(explained[:, None], grid)  # [B, 1, h, w]
        mean_albedo = F.adaptive_avg_pool2d(weighted, grid) / share.clamp(min=1e-6)  # [B, 3, h, w]
        phase = torch.einsum("mc,bchw->bmhw", self.material_projection, mean_albedo)
        embedded = torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)  # [B, 2Mm, h, w]
        return F.normalize(embedded, dim=1) * (share > BACKGROUND_MIN_FRACTION)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[-1, 1]`` -> ``[B, H / cell, W / cell, C]`` (rows may be zero)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name} expects images [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}"
            )
        pixels = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)  # [B, 3, H, W]
        grid = self.grid_size((pixels.shape[-2], pixels.shape[-1]))
        material, light = self.explain_background(pixels)
        objects = _max_pool(_min_pool((material < 0).float()[:, None], 3), 3)  # [B, 1, H, W]
        inner = _min_pool(objects, 3)[:, 0] > 0.5  # [B, H, W]
        tensors, mass = self.contrast_tensors(pixels, inner, light)
        contrast = self.signature_cells(_context(tensors), _context(mass))  # 3 x 3 receptive field
        object_share = _context(F.adaptive_avg_pool2d(objects, grid)) / 16.0  # [B, 1, h, w]
        presence = (object_share / self.presence).clamp(max=1.0)
        # the material part only where a cell holds no object pixel at all (the raw map,
        # dilated): a foreground cell must never match by the background it touches
        touched = F.adaptive_max_pool2d(_max_pool((material < 0).float()[:, None], 3), grid)
        background = self.material_weight * self.material_cells(material) * (touched == 0)
        features = torch.cat([contrast * presence, background], dim=1)  # [B, C, h, w]
        return features.permute(0, 2, 3, 1).contiguous()  # [B, h, w, C]

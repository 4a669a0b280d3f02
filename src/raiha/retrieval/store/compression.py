"""Compression of stored gallery features: projected int8 content, uint8 HSV histograms.

Methods (:class:`CompressionConfig`):

- ``fp16``: no compression; content ``[L, C]`` and appearance ``[L, D]`` as float16
  (2 * (C + D) bytes per cell: 1.75 MiB per image at 32 x 32 x (768 + 108)).
- ``pca_int8`` (the default): content projected on the top ``content_dim`` (k) principal
  axes of the *uncentred* second moment of the gallery's cells (the k-dim subspace that
  best keeps dot products, hence cosines), fitted on every cell of ``fit_images`` images
  chosen by ``seed``; then int8 with one float32 scale per cell vector
  (``q = round(y / s)``, ``s = max|y| / 127``). Appearance (non-negative histograms):
  uint8 with one float32 scale per cell (``s = max a / 255``). ``k + 4 + D + 4`` bytes
  per cell: 244 KiB per image at 32 x 32, k = 128, D = 108.
- ``random_int8``: like ``pca_int8`` with a seeded random orthonormal projection
  (nothing to fit; distorts cosines more).

Features with ``C <= k`` dims (small test extractors) are not projected, only quantised.

``auto`` (the default of :func:`raiha.retrieval.store.store_builder.build_feature_store`) keeps
fp16 when it fits in ``STORE_BUDGET_BYTES`` (256,000) per image and otherwise uses the
default ``pca_int8`` (k = 128): the paper's 32 x 32 x (768 + 108) store is compressed,
small synthetic and test stores stay exact.

Search normalises every vector, so only directions matter; the scales only make the
decoded rows approximate the projected features. Queries go through the same projection
and quantisation (:meth:`FeatureCompressor.compress_query`), so the brute-force scan and
the indexed search compare the same vectors. Per component the decoding error is at most
``s / 2``, i.e. ``|y - y^| <= sqrt(k) * max|y| / 254`` per vector.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from raiha.io.atomic_io import atomic_write
from raiha.retrieval.features.query import RetrievalQuery

METHODS = ("fp16", "pca_int8", "random_int8")
AUTO = "auto"
STORE_BUDGET_BYTES = 256_000  # per gallery image: "below 256 KB" in either unit
BASIS_FILE = "compression_basis.safetensors"
CONTENT_LEVELS = 127  # int8, symmetric
APPEARANCE_LEVELS = 255  # uint8, non-negative
SCALE_BYTES = 4  # one float32 scale per cell vector
PROJECT_CHUNK = 65536  # cell vectors projected at once (bounds the float32 copy)


@dataclass(frozen=True)
class CompressionConfig:
    """How a store keeps features; part of the store key.

    Args:
        method: ``fp16``, ``pca_int8`` or ``random_int8``.
        content_dim: k, the most content dims kept (int8 methods; smaller C is not projected).
        fit_images: ``pca_int8``: images whose cells fit the principal axes.
        seed: which images fit the PCA; the random projection of ``random_int8``.
    """

    method: str = "pca_int8"
    content_dim: int = 128
    fit_images: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"compression method {self.method!r} is unknown; use one of {METHODS}")
        if self.content_dim < 1 or self.fit_images < 1:
            raise ValueError(
                f"compression {self.method}: content_dim ({self.content_dim}) and fit_images "
                f"({self.fit_images}) must be >= 1"
            )

    @property
    def quantises(self) -> bool:
        """Whether features are stored as int8/uint8 codes (every method but fp16)."""
        return self.method != "fp16"

    def stored_dim(self, source_dim: int) -> int:
        """Content dims stored for ``source_dim``-dim features: ``min(k, C)``, or C for fp16."""
        return min(self.content_dim, source_dim) if self.quantises else source_dim

    def projects(self, source_dim: int) -> bool:
        """Whether ``source_dim``-dim content is projected (int8 methods with k < C)."""
        return self.quantises and self.content_dim < source_dim

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that change what is stored (compared on reopen and resume)."""
        if self.method == "fp16":
            return {"method": "fp16"}
        fields: dict[str, Any] = {"method": self.method, "content_dim": self.content_dim}
        if self.method == "pca_int8":
            fields["fit_images"] = self.fit_images
        return {**fields, "seed": self.seed}

    @classmethod
    def parse(cls, spec: CompressionConfig | str | dict[str, Any] | None) -> CompressionConfig:
        """A config from itself, a dict, ``None`` (fp16, no compression) or ``"method[:k]"``."""
        if isinstance(spec, CompressionConfig):
            return spec
        if spec is None:
            return cls(method="fp16")
        if isinstance(spec, dict):
            return cls(**spec)
        method, _, dim = str(spec).partition(":")
        return cls(method=method) if not dim else cls(method=method, content_dim=int(dim))


class PcaFitter:
    """Accumulates the uncentred second moment ``sum x x^T`` (float64) of content rows."""

    def __init__(self, source_dim: int) -> None:
        self.moment = torch.zeros(source_dim, source_dim, dtype=torch.float64)
        self.count = 0

    def add(self, rows: Tensor) -> None:
        """Add content rows ``[..., C]`` (any float dtype)."""
        flat = rows.reshape(-1, rows.shape[-1]).double().cpu()  # [n, C]
        self.moment += flat.T @ flat
        self.count += flat.shape[0]

    def basis(self, content_dim: int) -> Tensor:
        """Orthonormal rows ``[k, C]`` (float32): top-k eigenvectors, largest |entry| positive."""
        if self.count == 0:
            raise ValueError("cannot fit PCA compression: no content rows were added")
        _, vectors = torch.linalg.eigh(self.moment)  # ascending eigenvalues, [C, C]
        top = vectors[:, -content_dim:].flip(1).T  # [k, C], largest first
        pivot = top.abs().argmax(dim=1, keepdim=True)  # [k, 1]
        signs = torch.sign(torch.gather(top, 1, pivot))  # [k, 1]
        return (top * signs).float().contiguous()

    def compressor(self, config: CompressionConfig) -> FeatureCompressor:
        """The fitted compressor; ``fit_info`` records the cells used and the energy kept."""
        basis = self.basis(config.content_dim)
        info = {"fit_cells": self.count, "kept_energy": round(self.kept_energy(basis), 6)}
        return FeatureCompressor(config, self.moment.shape[0], basis, fit_info=info)

    def kept_energy(self, basis: Tensor) -> float:
        """Fraction of the rows' squared norm inside the span of ``basis``."""
        projected = torch.trace(basis.double() @ self.moment @ basis.double().T)
        return float(projected / torch.trace(self.moment).clamp(min=1e-300))


def random_orthogonal_basis(source_dim: int, content_dim: int, seed: int) -> Tensor:
    """Orthonormal rows ``[k, C]`` (float32) from a seeded Gaussian matrix (QR)."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(source_dim, content_dim, generator=generator, dtype=torch.float64)
    orthonormal, _ = torch.linalg.qr(gaussian)  # [C, k]
    return orthonormal.T.float().contiguous()


def quantize_rows(rows: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """Per-row symmetric quantisation of ``rows`` ``[..., d]`` to integers in ``[-levels, levels]``.

    Returns:
        integer codes ``[..., d]`` (int16, for the caller to narrow) and float32 scales ``[...]``
        with ``rows ~ codes * scales[..., None]``; an all-zero row gets scale 0.
    """
    rows = rows.float()
    scales = rows.abs().amax(dim=-1) / levels  # [...]
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = torch.round(rows / safe[..., None]).clamp(-levels, levels)  # [..., d]
    return codes.to(torch.int16), scales


def dequantize_rows(codes: Tensor | np.ndarray, scales: Tensor | np.ndarray) -> Tensor:
    """float32 ``codes * scales[..., None]``."""
    codes_t = torch.as_tensor(np.asarray(codes) if not isinstance(codes, Tensor) else codes)
    scales_t = torch.as_tensor(np.asarray(scales) if not isinstance(scales, Tensor) else scales)
    return codes_t.float() * scales_t.float()[..., None]


class FeatureCompressor:
    """Encodes raw features for a store and decodes them; projects queries the same way.

    Args:
        config: the method.
        source_dim: C, the extractor's content dimension.
        basis: ``[k, C]`` orthonormal rows (projection methods; made from the seed for
            ``random_int8`` when omitted, fitted for ``pca_int8``: see :class:`PcaFitter`).
    """

    def __init__(
        self,
        config: CompressionConfig,
        source_dim: int,
        basis: Tensor | None = None,
        *,
        fit_info: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.fit_info = dict(fit_info or {})
        self.source_dim = source_dim
        projects = config.projects(source_dim)
        if projects and config.method == "random_int8" and basis is None:
            basis = random_orthogonal_basis(source_dim, config.content_dim, config.seed)
        if projects and basis is None:
            raise ValueError(
                f"pca_int8 compression of {source_dim}-dim features needs a fitted basis "
                f"(PcaFitter.compressor or FeatureCompressor.fit)"
            )
        if not projects:
            basis = None  # nothing to project: C <= k or fp16
        if basis is not None and tuple(basis.shape) != (config.content_dim, source_dim):
            raise ValueError(
                f"compression basis is {tuple(basis.shape)}, expected {(config.content_dim, source_dim)}"
            )
        self.basis = None if basis is None else basis.float().contiguous()  # [k, C]

    @classmethod
    def fit(cls, config: CompressionConfig, content_sample: Tensor) -> FeatureCompressor:
        """A compressor for ``config``; ``pca_int8`` is fitted on ``content_sample`` ``[..., C]``."""
        source_dim = content_sample.shape[-1]
        if config.method != "pca_int8" or not config.projects(source_dim):
            return cls(config, source_dim)
        fitter = PcaFitter(source_dim)
        fitter.add(content_sample)
        return fitter.compressor(config)

    @property
    def stored_content_dim(self) -> int:
        return self.config.stored_dim(self.source_dim)

    def bytes_per_cell(self, appearance_dim: int) -> int:
        """Stored bytes of one grid cell (content + appearance, codes and scales)."""
        return bytes_per_cell(self.config, self.source_dim, appearance_dim)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the basis bytes (``""`` without a basis)."""
        if self.basis is None:
            return ""
        return hashlib.sha256(self.basis.numpy().tobytes()).hexdigest()

    def project(self, content: Tensor) -> Tensor:
        """float32 ``[..., k]`` coordinates of content ``[..., C]`` on the basis."""
        if self.basis is None:
            return content.float()
        flat = content.reshape(-1, content.shape[-1])  # [n, C]
        parts = [
            flat[start : start + PROJECT_CHUNK].float() @ self.basis.T  # [chunk, k]
            for start in range(0, flat.shape[0], PROJECT_CHUNK)
        ]
        projected = (
            torch.cat(parts) if parts else flat.new_zeros(0, self.stored_content_dim).float()
        )
        return projected.reshape(*content.shape[:-1], -1)  # [..., k]

    def encode(self, content: Tensor, appearance: Tensor) -> dict[str, np.ndarray]:
        """Arrays to store for content ``[n, L, C]`` and appearance ``[n, L, D]``, by file kind."""
        if not self.config.quantises:
            return {"content": _fp16(content), "appearance": _fp16(appearance)}
        if bool((appearance < 0).any()):
            raise ValueError(
                "int8 compression stores appearance as uint8 histograms, but some values are "
                "negative; pass non-negative HSV histograms or use compression 'fp16'"
            )
        content_codes, content_scales = quantize_rows(self.project(content), CONTENT_LEVELS)
        appearance_codes, appearance_scales = quantize_rows(appearance, APPEARANCE_LEVELS)
        return {
            "content": content_codes.to(torch.int8).numpy(),  # [n, L, k]
            "content_scale": content_scales.numpy(),  # [n, L]
            "appearance": appearance_codes.to(torch.uint8).numpy(),  # [n, L, D]
            "appearance_scale": appearance_scales.numpy(),  # [n, L]
        }

    @property
    def kinds(self) -> tuple[str, ...]:
        """The file kinds :meth:`encode` writes."""
        if not self.config.quantises:
            return ("content", "appearance")
        return ("content", "content_scale", "appearance", "appearance_scale")

    def decode(self, kind: str, arrays: dict[str, np.ndarray]) -> Tensor:
        """Rows of ``kind`` (``content``/``appearance``) from stored arrays: float16 for fp16, else float32."""
        if not self.config.quantises:
            return torch.from_numpy(np.ascontiguousarray(arrays[kind]))
        return dequantize_rows(arrays[kind], arrays[f"{kind}_scale"])

    def decode_float32(self, kind: str, arrays: dict[str, np.ndarray]) -> Tensor:
        """``decode(kind, arrays).float()`` (the same values) as a new float32 tensor; the
        stored arrays (e.g. views of read-only memory maps) are only read."""
        values = _readable_tensor(arrays[kind])  # [..., dim]
        if not self.config.quantises:
            return values.to(torch.float32, copy=True)  # float16 -> float32 is exact
        scales = _readable_tensor(arrays[f"{kind}_scale"])  # [...]
        return values.float() * scales.float()[..., None]  # as dequantize_rows

    def compress_query(self, query: RetrievalQuery) -> RetrievalQuery:
        """The query as the store holds features: projected and quantised like the gallery.

        Content of the extractor's dimension C is encoded; content already of the stored
        dimension k < C (e.g. rows read from the store) is returned unchanged; fp16 stores
        return the query unchanged. (With C <= k a query is always encoded: re-encoding
        decoded rows gives the same codes.)
        """
        if not self.config.quantises:
            return query
        dim = query.content.shape[-1]
        if dim == self.stored_content_dim and dim != self.source_dim:
            return query
        if dim != self.source_dim:
            raise ValueError(
                f"query content has {dim} dims but the store was built from {self.source_dim}-dim "
                f"features (stored as {self.stored_content_dim}); extract the query with the "
                f"store's extractor"
            )
        arrays = self.encode(query.content[None], query.appearance[None])  # [1, h, w, ...]
        return replace(
            query,
            content=self.decode("content", arrays)[0],  # [h, w, k]
            appearance=self.decode("appearance", arrays)[0],  # [h, w, D]
        )

    def save(self, path: Path) -> Path:
        """Write the basis (safetensors, atomically); nothing to write without one."""
        if self.basis is None:
            raise ValueError(f"compression {self.config.method} has no basis to save to {path}")
        metadata = {"config": json.dumps(self.config.to_dict()), "source_dim": str(self.source_dim)}
        basis = self.basis
        return atomic_write(
            path, lambda tmp: save_file({"basis": basis}, str(tmp), metadata=metadata)
        )

    @classmethod
    def load(cls, path: Path, config: CompressionConfig, source_dim: int) -> FeatureCompressor:
        """Read a basis written by :meth:`save` for ``config``."""
        if not path.is_file():
            raise FileNotFoundError(
                f"compression basis {path} is missing; rebuild the store (rebuild=True)"
            )
        with safe_open(str(path), framework="pt") as handle:
            basis = handle.get_tensor("basis")
        return cls(config, source_dim, basis)


def _readable_tensor(array: np.ndarray) -> Tensor:
    """A tensor of ``array``: shares writable arrays' memory; read-only ones (views of
    ``mmap_mode="r"`` maps) are copied once, since a tensor over read-only memory is
    undefined behaviour in torch (and ``torch.from_numpy`` warns)."""
    return torch.from_numpy(array if array.flags.writeable else np.array(array))


def _fp16(array: Tensor) -> np.ndarray:
    return np.ascontiguousarray(array.detach().cpu().to(torch.float16).numpy())


def bytes_per_cell(config: CompressionConfig, source_dim: int, appearance_dim: int) -> int:
    """Stored bytes of one grid cell: ``2 (C + D)`` for fp16, ``k + 4 + D + 4`` for int8."""
    if not config.quantises:
        return 2 * (source_dim + appearance_dim)
    return config.stored_dim(source_dim) + SCALE_BYTES + appearance_dim + SCALE_BYTES


def store_bytes_per_image(
    grid_size: tuple[int, int], source_dim: int, appearance_dim: int, compression: CompressionConfig
) -> int:
    """Stored feature bytes of one gallery image (the shared basis not counted)."""
    return grid_size[0] * grid_size[1] * bytes_per_cell(compression, source_dim, appearance_dim)


def resolve_compression(
    spec: CompressionConfig | str | dict[str, Any] | None,
    grid_size: tuple[int, int],
    source_dim: int,
    appearance_dim: int,
) -> CompressionConfig:
    """``spec`` as a config; ``"auto"``: fp16 if it fits ``STORE_BUDGET_BYTES`` per image, else the default."""
    if spec != AUTO:
        return CompressionConfig.parse(spec)
    fp16 = CompressionConfig("fp16")
    fits = store_bytes_per_image(grid_size, source_dim, appearance_dim, fp16) <= STORE_BUDGET_BYTES
    return fp16 if fits else CompressionConfig()

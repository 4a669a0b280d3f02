"""``raiha.Harmonizer``: harmonize your own composites with a trained checkpoint.

    from raiha import Harmonizer
    model = Harmonizer.from_checkpoint("logs/train/runs/<run>/checkpoints/best.ckpt")
    result = model.harmonize("photo.jpg", "mask.png")                  # non-reference
    result = model.harmonize("photo.jpg", "mask.png", reference="ref.jpg")
    result = model.harmonize("photo.jpg", "mask.png", gallery="my_photos/")  # retrieval
    Image.fromarray(result.image).save("out.png")

The checkpoint's model card (``raiha.models.model_card``) says which network, at which
size, with which semantic extractor; nothing else is needed. Predictions are made at the
model size and carried to the input's full resolution (``raiha.models.full_resolution``):
pixels outside the mask stay bit-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from raiha.evaluation.drawing import attention_overlay
from raiha.inference.gallery_search import find_references, open_gallery, resolve_gallery_root
from raiha.inference.inputs import (
    ImageInput,
    PreparedInput,
    prepare_input,
    read_rgb,
    to_model_tensor,
)
from raiha.io.errors import RaihaDataError
from raiha.io.tensors import tensor_to_rgb
from raiha.models.checkpoint_io import CheckpointError, load_state_checked, read_checkpoint
from raiha.models.compile_options import strip_compile_prefix
from raiha.models.full_resolution import transfer_to_full_resolution
from raiha.models.harmonizer_output import paste_foreground
from raiha.models.layers.fusion import key_attention_map
from raiha.models.model_card import MODEL_CARD_KEY, check_model_card
from raiha.models.reference_input import harmonize as run_network
from raiha.models.registry import create_harmonizer
from raiha.retrieval.features.content_features import DenseFeatureExtractor
from raiha.retrieval.features.registry import create_extractor
from raiha.retrieval.settings import RetrievalSettings

log = logging.getLogger(__name__)
SYNTHETIC_ONLY = (
    "its retrieval extractor is the weight-free 'synthetic' one, which only understands the built-in "
    "synthetic world: on real photos it rarely finds a valid reference. For real photos use a checkpoint "
    "trained with the DVT extractor (conf/retrieval/dvt.yaml) or pass reference="
)


@dataclass
class HarmonizationResult:
    """One harmonized composite.

    Attributes:
        image: uint8 ``[H, W, 3]`` at the input's full resolution.
        name: the input's name (its path, or "the composite array").
        reference: the reference used (a path, "the reference array") or None (non-reference).
        reference_scores: ``(content, illumination)`` scores of a retrieved reference.
        reference_image: uint8 ``[h, w, 3]``, the reference used, as read (None without one).
        output_small: uint8 ``[S, S, 3]``, the network's pasted output at the model size.
        attention: uint8 ``[S, W', 3]``: the attention the foreground sends to the
            background (left) and the reference (right, when one is used), drawn in red.
        note: why the non-reference setting was used, when a reference was asked for.
    """

    image: np.ndarray
    name: str
    reference: str | None = None
    reference_scores: tuple[float, float] | None = None
    reference_image: np.ndarray | None = None
    output_small: np.ndarray | None = None
    attention: np.ndarray | None = None
    note: str = ""


@dataclass
class _Job:
    prepared: PreparedInput
    reference: Tensor | None = None  # [3, S, S]
    reference_pixels: np.ndarray | None = None
    reference_name: str | None = None
    scores: tuple[float, float] | None = None
    note: str = ""


class Harmonizer:
    """A trained harmonizer with its semantic extractor (see the module docstring)."""

    def __init__(
        self,
        net: torch.nn.Module,
        card: dict[str, Any],
        extractor: DenseFeatureExtractor | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.card = card
        self.semantic = bool(card.get("semantic"))  # SGF reads semantic grids of the inputs
        self._extractor = None if extractor is None else extractor.to(self.device).eval()
        self._extractor_kwargs: dict[str, Any] = {}
        # the retrieval rule and extractor: kept whenever training used references, SGF or not
        has_retrieval = bool(card.get("extractor")) and bool(card.get("retrieval"))
        self.settings = RetrievalSettings.from_dict(card["retrieval"]) if has_retrieval else None
        self._synthetic_warned = False

    @property
    def extractor(self) -> DenseFeatureExtractor | None:
        """The checkpoint's retrieval extractor (built on first use when SGF does not need it)."""
        if self._extractor is None and self.settings is not None:
            kwargs = {**dict(self.settings.extractor_kwargs), **self._extractor_kwargs}
            self._extractor = create_extractor(self.settings.extractor, **kwargs).to(self.device).eval()
        return self._extractor

    @property
    def image_size(self) -> int:
        return int(self.card["image_size"])

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        extractor: str | None = None,
        extractor_kwargs: dict[str, Any] | None = None,
    ) -> Harmonizer:
        """Load a checkpoint written by ``raiha.train`` (read with ``weights_only=True``).

        Args:
            path: the ``.ckpt`` file.
            device: where to run.
            image_size, extractor: optional checks: they must equal what the model was
                trained with (a mismatch raises ``ValueError`` naming both).
            extractor_kwargs: overrides of the extractor's arguments (e.g. local weight files).
        """
        payload = read_checkpoint(path)
        card = check_model_card(payload.get(MODEL_CARD_KEY), str(path))
        if image_size is not None and int(image_size) != int(card["image_size"]):
            raise ValueError(
                f"checkpoint {path} was trained at {card['image_size']} px, not {image_size}: "
                "harmonize at the trained size (the output is returned at full resolution anyway)"
            )
        trained_extractor = card.get("extractor")
        if extractor is not None and extractor != trained_extractor:
            raise ValueError(
                f"checkpoint {path} was trained with extractor {trained_extractor!r}, not {extractor!r}: "
                "SGF and the retrieval rule only understand the features they were trained with"
            )
        net_config = {key: value for key, value in dict(card["net"]).items() if key != "_target_"}
        net = create_harmonizer(net_config.pop("name"), **net_config)
        state = payload.get("state_dict")
        if not isinstance(state, dict):
            raise CheckpointError(f"checkpoint {path} has no 'state_dict'")
        state = strip_compile_prefix(state)  # checkpoints of hand-compiled networks too
        load_state_checked(net, {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}, path)
        feature_extractor = None
        if card.get("semantic"):
            settings = RetrievalSettings.from_dict(card.get("retrieval") or {})
            kwargs = {**dict(settings.extractor_kwargs), **(extractor_kwargs or {})}
            feature_extractor = create_extractor(settings.extractor, **kwargs)
            channels = int(net_config.get("semantic_channels", 0))
            if channels and feature_extractor.feature_dim != channels:
                raise ValueError(
                    f"checkpoint {path}: extractor {settings.extractor} gives {feature_extractor.feature_dim} channels "
                    f"but the network was built for {channels}"
                )
        model = cls(net, card, feature_extractor, device)
        model._extractor_kwargs = dict(extractor_kwargs or {})
        return model
    # ------------------------------------------------------------------ public API
    def harmonize(
        self,
        composite: ImageInput,
        mask: ImageInput,
        *,
        reference: ImageInput | None = None,
        gallery: Any = None,
        gallery_root: str | Path | None = None,
        method: str = "affine",
        cache_dir: str | Path | None = None,
        mask_mode: str = "binary",
    ) -> HarmonizationResult:
        """Harmonize one composite: without a reference, with ``reference``, or with the
        best reference retrieved from ``gallery`` (a photo folder or a feature store)."""
        return self.harmonize_top_k(
            composite, mask, reference=reference, gallery=gallery, gallery_root=gallery_root,
            top_k=1, method=method, cache_dir=cache_dir, mask_mode=mask_mode,
        )[0]  # fmt: skip

    def harmonize_top_k(
        self,
        composite: ImageInput,
        mask: ImageInput,
        *,
        reference: ImageInput | None = None,
        gallery: Any = None,
        gallery_root: str | Path | None = None,
        top_k: int = 1,
        method: str = "affine",
        cache_dir: str | Path | None = None,
        mask_mode: str = "binary",
    ) -> list[HarmonizationResult]:
        """One result per retrieved reference (at most ``top_k``, best first)."""
        jobs = self.plan(composite, mask, reference=reference, gallery=gallery, gallery_root=gallery_root,
                         top_k=top_k, cache_dir=cache_dir, mask_mode=mask_mode)  # fmt: skip
        return list(self.run(jobs, method=method))

    def plan(
        self,
        composite: ImageInput,
        mask: ImageInput,
        *,
        reference: ImageInput | None = None,
        gallery: Any = None,
        gallery_root: str | Path | None = None,
        top_k: int = 1,
        cache_dir: str | Path | None = None,
        progress: bool = False,
        mask_mode: str = "binary",
    ) -> list[_Job]:
        """Read and check the inputs, retrieve references: the network's work list.

        ``mask_mode``: ``binary`` (the mask rule, > 127 is foreground: every other pixel stays
        bit-identical) or ``soft`` (the result is blended with the mask's grey levels).
        """
        if reference is not None and gallery is not None:
            raise ValueError("give either reference= or gallery=, not both")
        prepared = prepare_input(composite, mask, self.image_size, mask_mode)
        if reference is not None:
            pixels = read_rgb(reference)
            name = str(reference) if isinstance(reference, (str, Path)) else "the reference array"
            return [_Job(prepared, to_model_tensor(pixels, self.image_size), pixels, name)]
        if gallery is None:
            return [_Job(prepared)]
        if self.settings is None or self.extractor is None:
            raise ValueError(
                "this checkpoint was trained without retrieved references (its model card names no "
                "retrieval extractor), so it cannot search a gallery; pass reference= instead"
            )
        self._warn_if_synthetic()
        store = open_gallery(gallery, self.extractor, self.settings, cache_dir=cache_dir, progress=progress)
        refs = find_references(prepared, store, self.extractor, self.settings, top_k)
        if not refs:
            note = f"no valid reference for {prepared.name} in the gallery: used the non-reference setting"
            if self.settings.extractor == "synthetic":
                note += f" ({SYNTHETIC_ONLY})"
            log.warning(note)
            return [_Job(prepared, note=note)]
        root = resolve_gallery_root(gallery, gallery_root)
        jobs = []
        for ref in refs:
            location = (root / ref.path) if root is not None else Path(ref.path)
            try:
                pixels = read_rgb(location)
            except RaihaDataError as error:
                raise RaihaDataError(f"retrieved reference {location} cannot be read ({error}); pass gallery_root") from error
            jobs.append(_Job(prepared, to_model_tensor(pixels, self.image_size), pixels, str(location),
                             (ref.content_score, ref.illumination_score)))  # fmt: skip
        return jobs

    def run(self, jobs: Sequence[_Job], *, method: str = "affine", batch_size: int = 8) -> Iterator[HarmonizationResult]:
        """Run the network on ``jobs`` in batches (jobs with and without a reference apart)."""
        with_reference = [job for job in jobs if job.reference is not None]
        without = [job for job in jobs if job.reference is None]
        for group in (with_reference, without):
            for start in range(0, len(group), batch_size):
                yield from self._run_batch(group[start : start + batch_size], method)

    # ------------------------------------------------------------------ internals
    def _warn_if_synthetic(self) -> None:
        """Say once that the weight-free extractor only understands the synthetic world."""
        if self.settings is not None and self.settings.extractor == "synthetic" and not self._synthetic_warned:
            self._synthetic_warned = True
            log.warning("gallery search with this checkpoint: %s", SYNTHETIC_ONLY)

    def _semantic(self, images: Tensor) -> Tensor | None:
        """``[B, C, h, w]`` semantic grids of model-size images ``[B, 3, S, S]`` (None without SGF)."""
        if not self.semantic or self.extractor is None or self.settings is None:
            return None
        size = self.settings.image_size
        if images.shape[-1] != size:
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return self.extractor(images).permute(0, 3, 1, 2).contiguous()

    @torch.inference_mode()
    def _run_batch(self, jobs: Sequence[_Job], method: str) -> Iterator[HarmonizationResult]:
        composite = torch.stack([job.prepared.composite_small for job in jobs]).to(self.device)  # [B, 3, S, S]
        mask = torch.stack([job.prepared.mask_small for job in jobs]).to(self.device)  # [B, 1, S, S]
        reference = None
        if jobs[0].reference is not None:
            reference = torch.stack([job.reference for job in jobs]).to(self.device)  # type: ignore[misc]
        output = run_network(
            self.net, composite, mask, reference=reference, semantic=self._semantic(composite),
            reference_semantic=None if reference is None else self._semantic(reference),
        )  # fmt: skip
        pasted = paste_foreground(output.image, composite, mask)
        heat = None
        if output.attention is not None and output.attention.weights is not None:
            grid_h, grid_w = output.attention.foreground_cells.shape[-2:]
            size = composite.shape[-1]
            heat = key_attention_map(output.attention, (size, size * grid_w // grid_h))  # [B, 1, S, W']
        for index, job in enumerate(jobs):
            prepared = job.prepared
            full = transfer_to_full_resolution(
                prepared.composite, prepared.alpha, prepared.composite_small, pasted[index].cpu(),
                prepared.mask_small, method,
            )  # fmt: skip
            attention = None
            if heat is not None:
                shown = composite[index : index + 1]
                if reference is not None:
                    shown = torch.cat([shown, reference[index : index + 1]], dim=-1)
                attention = tensor_to_rgb(attention_overlay(shown, heat[index : index + 1])[0])
            yield HarmonizationResult(
                image=full, name=prepared.name, reference=job.reference_name, reference_scores=job.scores,
                reference_image=job.reference_pixels,
                output_small=tensor_to_rgb(pasted[index]), attention=attention, note=job.note,
            )  # fmt: skip

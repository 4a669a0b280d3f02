"""Dense content features ``c`` for retrieval: DINOv2 patch tokens, optionally DVT-denoised.

Every extractor maps images ``[B, 3, H, W]`` in ``[-1, 1]`` to a channels-last grid
``[B, h, w, C]`` and is frozen (eval mode, no gradients). The paper's setting is ``dvt``
with timm ``vit_base_patch14_reg4_dinov2.lvd142m`` at 448 x 448 -> 32 x 32 x 768.
Nothing here downloads weights: they come from the Hugging Face cache or a file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raiha.retrieval.features.dvt_denoiser import DvtDenoiser, load_dvt_denoiser
from raiha.retrieval.features.registry import register_extractor

log = logging.getLogger(__name__)

DEFAULT_DINOV2 = "vit_base_patch14_reg4_dinov2.lvd142m"
# allow_random_weights draws the stand-in weights from this seed: every process (fit, test,
# eval) builds the same extractor, so the stores it cached are found again
RANDOM_WEIGHTS_SEED = 0


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were requested but are not available on this machine."""


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of every parameter and buffer: names, shapes and bytes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)  # [numel]
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class DenseFeatureExtractor(nn.Module):
    """Interface: images ``[B, 3, H, W]`` in ``[-1, 1]`` -> features ``[B, h, w, C]``.

    Subclasses set ``feature_dim``, implement ``grid_size``, ``forward`` and ``config``,
    and register with ``@register_extractor(name)`` (which sets ``name``).
    """

    name: str = "abstract"
    feature_dim: int

    def grid_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the feature grid for an input of ``image_size`` (int = square)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The constructor arguments that change the features (JSON-serialisable)."""
        raise NotImplementedError

    def cache_config(self) -> dict[str, Any]:
        """Identity of the features for caches: name, config and a fingerprint of the weights."""
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = weights_fingerprint(self)
        return {"name": self.name, **self.config(), "weights_sha256": self._fingerprint}


def _square(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def create_timm_backbone(
    model_name: str,
    *,
    input_size: int,
    pretrained: bool,
    pretrained_file: str | None,
    allow_random_weights: bool,
    model_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A timm ViT at ``img_size=input_size`` without head; clear error when weights are missing."""
    overlay = {"file": str(pretrained_file)} if pretrained_file else None
    extra = dict(model_kwargs or {})
    if not pretrained:
        log.warning("timm model '%s' built with random weights (pretrained=False)", model_name)
    try:
        return timm.create_model(
            model_name,
            pretrained=pretrained,
            img_size=input_size,
            num_classes=0,
            pretrained_cfg_overlay=overlay,
            **extra,
        )
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        if not pretrained:
            raise
        where = f"file {pretrained_file}" if pretrained_file else "the Hugging Face cache (HF_HOME)"
        message = (
            f"pretrained weights for timm model '{model_name}' are not available from {where} "
            f"({type(error).__name__}: {error}). Nothing in raiha downloads them: copy them into the "
            f"Hugging Face cache, pass pretrained_file=<.safetensors/.pth>, or set "
            f"allow_random_weights=True (tests only: retrieval with random weights is meaningless)"
        )
        if not allow_random_weights:
            raise MissingWeightsError(message) from error
    log.warning(
        "!!! RANDOM WEIGHTS !!! %s. Continuing with a randomly initialised backbone (seed %d).",
        message,
        RANDOM_WEIGHTS_SEED,
    )
    with seeded_random_weights():
        return timm.create_model(
            model_name, pretrained=False, img_size=input_size, num_classes=0, **extra
        )


@contextmanager
def seeded_random_weights() -> Iterator[None]:
    """Initialise modules from :data:`RANDOM_WEIGHTS_SEED`, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        yield


@register_extractor("dinov2")
class Dinov2Extractor(DenseFeatureExtractor):
    """Last-block DINOv2 patch tokens (after the final norm, prefix tokens dropped).

    Args:
        model_name: timm model name.
        input_size: images are resized to ``input_size`` x ``input_size`` (multiple of the patch).
        pretrained: load pretrained weights (from the hub cache or ``pretrained_file``).
        pretrained_file: a local weights file for timm (``pretrained_cfg_overlay=dict(file=...)``).
        allow_random_weights: when weights are missing, warn and use random ones instead of failing.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``depth=1`` for tests).
    """

    def __init__(
        self,
        *,
        model_name: str = DEFAULT_DINOV2,
        input_size: int = 448,
        pretrained: bool = True,
        pretrained_file: str | None = None,
        allow_random_weights: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        self.input_size = input_size
        self.pretrained = pretrained
        self.pretrained_file = str(pretrained_file) if pretrained_file else None
        self.backbone = create_timm_backbone(
            model_name,
            input_size=input_size,
            pretrained=pretrained,
            pretrained_file=self.pretrained_file,
            allow_random_weights=allow_random_weights,
            model_kwargs=self.model_kwargs,
        )
        self.patch_size = _square(self.backbone.patch_embed.patch_size)
        if input_size % self.patch_size[0] or input_size % self.patch_size[1]:
            raise ValueError(
                f"input_size {input_size} is not a multiple of the patch size {self.patch_size} of {model_name}"
            )
        self.feature_dim = int(self.backbone.embed_dim)
        self.num_prefix_tokens = int(self.backbone.num_prefix_tokens)
        cfg = self.backbone.pretrained_cfg
        self.register_buffer(
            "pixel_mean",
            torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1),
            persistent=False,
        )
        self.register_buffer(
            "pixel_std",
            torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1),
            persistent=False,
        )
        self.requires_grad_(False)
        self.eval()

    def config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "input_size": self.input_size,
            "pretrained_file": self.pretrained_file,
            "model_kwargs": self.model_kwargs,
        }

    def grid_size(self, image_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """Always ``input_size / patch``: inputs are resized to ``input_size`` first."""
        return (self.input_size // self.patch_size[0], self.input_size // self.patch_size[1])

    def prepare(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[-1, 1]`` -> resized, ImageNet-normalised ``[B, 3, S, S]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name} expects images [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}"
            )
        pixels = (images.to(self.pixel_mean.dtype) + 1.0) / 2.0  # [B, 3, H, W] in [0, 1]
        if pixels.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            pixels = F.interpolate(
                pixels, size=size, mode="bicubic", align_corners=False, antialias=True
            )
            pixels = pixels.clamp(0.0, 1.0)  # [B, 3, S, S]
        return (pixels - self.pixel_mean) / self.pixel_std

    def backbone_grid(self, images: Tensor) -> Tensor:
        """Raw last-block tokens of the patches, ``[B, h, w, C]``."""
        tokens = self.backbone.forward_features(self.prepare(images))  # [B, prefix + h*w, C]
        patch_tokens = tokens[:, self.num_prefix_tokens :]  # [B, h*w, C]
        height, width = self.grid_size()
        return patch_tokens.reshape(
            tokens.shape[0], height, width, self.feature_dim
        )  # [B, h, w, C]

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone_grid(images)


def resolve_denoiser_path(
    model_name: str, denoiser_checkpoint: str | None, denoiser_dir: str | None
) -> Path | None:
    """The checkpoint file: explicit path, else ``<denoiser_dir>/<model_name>.pth`` (tag optional)."""
    if denoiser_checkpoint:
        return Path(denoiser_checkpoint)
    if not denoiser_dir:
        return None
    full = Path(denoiser_dir) / f"{model_name}.pth"
    untagged = Path(denoiser_dir) / f"{model_name.split('.')[0]}.pth"
    return untagged if not full.exists() and untagged.exists() else full


@register_extractor("dvt")
class DvtExtractor(Dinov2Extractor):
    """DINOv2 tokens passed through the DVT denoiser (the paper's content features).

    Args:
        denoiser_checkpoint: the published DVT ``.pth`` for this backbone.
        denoiser_dir: a folder holding ``<model_name>.pth`` (used when no explicit file).
        **kwargs: as :class:`Dinov2Extractor`; ``allow_random_weights`` also covers the denoiser.
    """

    def __init__(
        self,
        *,
        denoiser_checkpoint: str | None = None,
        denoiser_dir: str | None = None,
        allow_random_weights: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(allow_random_weights=allow_random_weights, **kwargs)
        path = resolve_denoiser_path(self.model_name, denoiser_checkpoint, denoiser_dir)
        self.denoiser_checkpoint = str(path) if path else None
        if path is not None and (path.exists() or not allow_random_weights):
            self.denoiser = load_dvt_denoiser(path, expected_feature_dim=self.feature_dim)
        elif allow_random_weights:
            log.warning(
                "!!! RANDOM WEIGHTS !!! no DVT denoiser checkpoint (%s): using a random denoiser",
                path,
            )
            with seeded_random_weights():
                self.denoiser = DvtDenoiser(feature_dim=self.feature_dim)
        else:
            raise ValueError(
                "the dvt extractor needs denoiser_checkpoint=<file.pth> or denoiser_dir=<folder with "
                f"{self.model_name}.pth>; or use the 'dinov2' extractor for raw features"
            )
        self.requires_grad_(False)
        self.eval()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "denoiser_checkpoint": self.denoiser_checkpoint}

    def forward(self, images: Tensor) -> Tensor:
        return self.denoiser(self.backbone_grid(images))  # [B, h, w, C]

"""Decoding RGB images and binary masks from disk, and resizing them to the training size.

Conventions (decisions; see the data docs):
- EXIF orientation is NOT applied: iHarmony4 files carry none, and composite, mask and
  real image must stay pixel-aligned whatever a viewer would do.
- Alpha is dropped (RGBA/LA keep their colour channels); palette images are expanded;
  16-bit images ("I;16", "I") are scaled to 8 bit by value / 257, rounded.
- THE mask rule (training, evaluation and ``raiha.harmonize`` alike): a mask pixel is
  foreground when the maximum over its colour channels is > 127 (``MASK_THRESHOLD``):
  identical to any single channel for 0/255 masks, and robust to JPEG masks whose chroma
  noise differs between channels. ``raiha.harmonize mask_mode=soft`` (opt-in) blends the
  result with the mask's grey levels instead; :func:`grey_mask_warning` says when a mask
  has many grey pixels (soft edges, JPEG noise), whichever mode is used.
- Truncated or corrupt files raise ``RaihaDataError``: ``ImageFile.LOAD_TRUNCATED_IMAGES``
  is forced off while decoding and every image is fully decoded (``.load()``).
- Images over Pillow's pixel limit (a decompression-bomb guard) raise ``RaihaDataError``
  saying so; ``RAIHA_MAX_IMAGE_PIXELS=N`` sets ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow refuses
  images over twice that value; ``0`` removes the limit).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from raiha.io.errors import RaihaDataError
from raiha.io.load_errors import pixel_limit_message

log = logging.getLogger(__name__)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
MASK_THRESHOLD = 127
MASK_MODES = ("binary", "soft")
# a mask whose grey pixels (neither 0 nor 255) exceed this share of the image is reported
GREY_MASK_FRACTION = 0.01
PIXEL_LIMIT_VARIABLE = "RAIHA_MAX_IMAGE_PIXELS"


def _apply_pixel_limit() -> None:
    """Set Pillow's pixel limit from ``RAIHA_MAX_IMAGE_PIXELS`` when it is set (0: no limit)."""
    value = os.environ.get(PIXEL_LIMIT_VARIABLE, "").strip()
    if not value:
        return
    try:
        limit = int(float(value))
    except ValueError:
        raise RaihaDataError(f"{PIXEL_LIMIT_VARIABLE}={value!r} is not a number of pixels") from None
    Image.MAX_IMAGE_PIXELS = limit if limit > 0 else None


def _decode(path: Path) -> Image.Image:
    """Open and fully decode ``path``; missing, truncated or corrupt files raise RaihaDataError."""
    path = Path(path)
    if not path.is_file():
        raise RaihaDataError(f"image {path} not found; check data.root and the split list")
    _apply_pixel_limit()
    previous_flag = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    image: Image.Image | None = None
    try:
        image = Image.open(path)
        image.load()
        return image
    except Image.DecompressionBombError as error:
        raise RaihaDataError(pixel_limit_message(path, error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        if image is not None:
            image.close()
        raise RaihaDataError(
            f"cannot decode image {path}: the file is corrupt or truncated ({error}); re-extract it"
        ) from error
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous_flag


def _to_uint8_channels(image: Image.Image, path: Path) -> np.ndarray:
    """Pixels as uint8 [H, W, C] with C in {1, 3}: alpha dropped, palettes expanded, 16 bit scaled."""
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)  # [H, W]
        narrow = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return narrow[:, :, None]  # [H, W, 1]
    if image.mode == "F":
        raise RaihaDataError(f"image {path} is a 32-bit float image; save it as 8-bit RGB or L")
    if image.mode in ("1", "L", "LA"):
        return np.array(image.convert("L"), dtype=np.uint8)[:, :, None]  # [H, W, 1]
    return np.array(image.convert("RGB"), dtype=np.uint8)  # [H, W, 3]


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` as uint8 RGB [H, W, 3] (grey, palette, RGBA and 16-bit inputs accepted)."""
    image = _decode(Path(path))
    channels = _to_uint8_channels(image, Path(path))  # [H, W, C]
    if channels.shape[2] == 1:
        channels = np.repeat(channels, 3, axis=2)  # [H, W, 3]
    return np.ascontiguousarray(channels)


def load_mask_values(path: str | Path) -> np.ndarray:
    """Decode a mask (PNG or JPEG, 1 or 3 channels) as uint8 [H, W]: the max over its channels."""
    image = _decode(Path(path))
    return _to_uint8_channels(image, Path(path)).max(axis=2)  # [H, W]


_grey_training_mask_reported = False


def load_mask(path: str | Path, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """Decode a mask as bool [H, W] by the mask rule: max over channels > ``threshold``.

    The first mask of a process with many grey pixels is reported (logged warning).
    """
    global _grey_training_mask_reported
    values = load_mask_values(path)  # [H, W]
    if not _grey_training_mask_reported:
        warning = grey_mask_warning(values.astype(np.float32) / 255.0, str(path), "binary")
        if warning:
            _grey_training_mask_reported = True
            log.warning("%s (training and evaluation always use the rule; further masks are not reported)", warning)
    return values > threshold  # [H, W]


def load_soft_mask(path: str | Path) -> np.ndarray:
    """Decode a mask as float32 [H, W] in [0, 1] (max over channels / 255): soft edges kept."""
    return load_mask_values(path).astype(np.float32) / 255.0  # [H, W]


def grey_mask_warning(alpha: np.ndarray, name: str, mode: str) -> str | None:
    """A warning when more than ``GREY_MASK_FRACTION`` of the mask ``alpha`` (float [H, W] in
    [0, 1]) is grey, saying what ``mode`` does with those pixels; None otherwise."""
    grey = (alpha > 0) & (alpha < 1)  # [H, W]
    count = int(grey.sum())
    if count <= GREY_MASK_FRACTION * alpha.size:
        return None
    background = int((grey & (alpha <= MASK_THRESHOLD / 255.0)).sum())
    share = f"{count} of its {alpha.size} pixels ({100.0 * count / alpha.size:.1f}%) are grey (soft edges or JPEG noise)"
    if mode == "soft":
        return (f"mask {name}: {share}; mask_mode=soft blends with them, so {background} pixels that the "
                f"> {MASK_THRESHOLD} rule calls background change too. Pass mask_mode=binary to keep them "
                "untouched, or save masks as PNG")  # fmt: skip
    return (f"mask {name}: {share}; mask_mode=binary treats them by the rule (> {MASK_THRESHOLD} is foreground, "
            "the rest is left untouched). Pass mask_mode=soft to blend with the grey levels")  # fmt: skip


def apply_mask_mode(alpha: np.ndarray, mode: str) -> np.ndarray:
    """float32 [H, W]: ``alpha`` itself (``soft``) or the mask rule as 0/1 (``binary``)."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask_mode={mode!r}; choose one of {MASK_MODES}")
    if mode == "soft":
        return alpha
    return (alpha > np.float32(MASK_THRESHOLD / 255.0)).astype(np.float32)  # v > 127 for v / 255


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 RGB [H, W, 3] to [size, size, 3] with PIL bilinear (as torchvision on PIL, HDNet)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.uint8)  # [size, size, 3]


def resize_mask(mask: np.ndarray, size: int, threshold: float = 0.5) -> np.ndarray:
    """Resize bool [H, W] to bool [size, size]: bilinear on the 0/1 float mask, then ``>= threshold``."""
    if mask.shape[0] == size and mask.shape[1] == size:
        return mask.astype(bool)
    as_float = Image.fromarray(mask.astype(np.float32))  # mode "F"
    resized = np.asarray(as_float.resize((size, size), Image.Resampling.BILINEAR))  # [size, size]
    return resized >= threshold


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of ``path`` read from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise RaihaDataError(f"image {path} not found; check data.root and the split list")
    _apply_pixel_limit()
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError as error:
        raise RaihaDataError(pixel_limit_message(path, error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise RaihaDataError(
            f"cannot read image {path}: the file is corrupt ({error}); re-extract it"
        ) from error


def check_same_size(
    composite_path: str | Path,
    composite_size: tuple[int, int],
    other_path: str | Path,
    other_size: tuple[int, int],
    other_kind: str,
) -> None:
    """Raise RaihaDataError when ``other_path`` (a mask or real image) is not the composite's size.

    Args:
        composite_size, other_size: (width, height).
        other_kind: "mask" or "real image", used in the message.
    """
    if tuple(other_size) != tuple(composite_size):
        raise RaihaDataError(
            f"{other_kind} {other_path} is {other_size[0]}x{other_size[1]} but composite "
            f"{composite_path} is {composite_size[0]}x{composite_size[1]}; "
            "the three files of a record must be pixel-aligned: re-extract or fix the list"
        )

"""Photos and their object masks: matching by file stem, binary or instance-id masks, objects.

A photo ``DIR/name.ext`` has the mask ``MASKS/name.<png|jpg|jpeg|bmp|tif|tiff|webp>``
(or ``name_mask.<ext>``). A mask is read either as one binary object (largest channel
> 127, the rule of ``raiha.io.image_io``) or as an instance-id map (every non-zero value
is one object): ``instances=auto`` takes a single-channel PNG without the value 255 and
with at most ``max_instance_ids`` distinct non-zero values as an id map (0/1 masks give
one object either way), everything else as binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raiha.io.errors import RaihaDataError
from raiha.io.image_io import _decode, _to_uint8_channels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ObjectMask:
    """One object of a photo: its number (1, 2, ... in the output names) and where it is."""

    number: int
    instance_id: int | None  # the value in an instance-id map; None for a binary mask
    mask: np.ndarray  # bool [H, W]

    @property
    def area_fraction(self) -> float:
        return float(self.mask.mean())


def list_photos(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files ignored)."""
    if not folder.is_dir():
        raise RaihaDataError(f"photos folder {folder} does not exist; pass photos=DIR")
    photos = sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    if not photos:
        raise RaihaDataError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return photos


def find_mask(photo: Path, masks_folder: Path) -> Path | None:
    """The mask file of ``photo`` in ``masks_folder`` (same stem, or ``<stem>_mask``), or None."""
    for stem in (photo.stem, f"{photo.stem}_mask"):
        for suffix in IMAGE_SUFFIXES:
            for candidate in (masks_folder / f"{stem}{suffix}", masks_folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


@dataclass(frozen=True)
class MaskPixels:
    """A decoded mask: uint8 channels for the binary reading, raw ids when it is a single-channel PNG."""

    channels: np.ndarray  # uint8 [H, W, C] (C in {1, 3}), 16-bit scaled to 8 bit
    ids: np.ndarray | None  # int64 [H, W]: the stored values of a lossless single-channel PNG

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.channels.shape[1]), int(self.channels.shape[0])


def read_mask(path: Path) -> MaskPixels:
    """Decode a mask file (RaihaDataError naming it when it is unreadable)."""
    image = _decode(path)
    ids = None
    if path.suffix.lower() == ".png" and image.mode in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
        ids = np.array(image).astype(np.int64)  # palette indices / grey levels / 16-bit ids
    return MaskPixels(_to_uint8_channels(image, path), ids)


def is_instance_map(pixels: MaskPixels, setting: str, max_ids: int) -> bool:
    """Whether the mask is read as an instance-id map (``setting``: auto | true | false)."""
    if setting == "false":
        return False
    if pixels.ids is None:
        if setting == "true":
            raise RaihaDataError("instances=true needs single-channel PNG id maps")
        return False
    if setting == "true":
        return True
    ids = np.unique(pixels.ids)
    ids = ids[ids != 0]
    return 255 not in ids and len(ids) <= max_ids


def object_masks(pixels: MaskPixels, instances: bool) -> list[ObjectMask]:
    """The objects of a mask: one binary object, or one per non-zero id (ascending)."""
    if not instances or pixels.ids is None:
        return [ObjectMask(1, None, pixels.channels.max(axis=2) > 127)]
    ids = np.unique(pixels.ids)
    if not (ids != 0).any():
        return [ObjectMask(1, None, np.zeros(pixels.ids.shape, dtype=bool))]  # reported as empty
    return [
        ObjectMask(number, int(value), pixels.ids == value)
        for number, value in enumerate((v for v in ids if v != 0), start=1)
    ]

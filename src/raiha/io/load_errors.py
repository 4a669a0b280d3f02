"""Messages that name the real cause of a failed ``torch.load`` or image decode."""

from __future__ import annotations

import re
from pathlib import Path

UNSAFE_PICKLE_MARKER = "Weights only load failed"


def is_unsafe_pickle_error(error: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused to unpickle Python objects."""
    return UNSAFE_PICKLE_MARKER in str(error)


def unsafe_pickle_message(path: str | Path, error: BaseException, what: str = "checkpoint") -> str:
    """One message for a file holding pickled Python objects: why it is refused (safety, not
    corruption), torch's own reason in full, and how to convert a trusted file."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # torch bolds a phrase with ANSI codes
    reason = next((line.strip() for line in text.splitlines() if "WeightsUnpickler error" in line), "")
    reason = reason.removeprefix("WeightsUnpickler error:").strip() or text.strip().splitlines()[0]
    safe = Path(path).with_suffix(".safe" + (Path(path).suffix or ".ckpt"))
    return (
        f"{what} {path} holds pickled Python objects, which torch.load(weights_only=True) refuses to "
        f"load for safety (unpickling can run code); the file itself is fine. torch says: {reason} "
        f"If you trust the file, convert it once to plain tensors and load the copy: python -c "
        f"\"from raiha.models.checkpoint_io import convert_trusted_checkpoint as c; c('{path}', '{safe}')\""
    )


def pixel_limit_message(path: str | Path, error: BaseException) -> str:
    """An image over Pillow's decompression-bomb limit: its size, the limit, how to raise it."""
    size = re.search(r"\((\d+) pixels\)", str(error))
    limit = re.search(r"limit of (\d+) pixels", str(error))
    pixels = f"{int(size.group(1)):,} pixels" if size else "more pixels than allowed"
    bound = f"{int(limit.group(1)):,}" if limit else "Pillow's limit"
    return (
        f"image {path} has {pixels}, over the pixel limit of {bound} (Pillow's guard against "
        "decompression bombs; the file is not necessarily corrupt). If you trust it, raise the limit: "
        "export RAIHA_MAX_IMAGE_PIXELS=<pixels> (or 0 for no limit), or downscale the image"
    )

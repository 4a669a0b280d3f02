"""iHarmony4 file naming: composite name -> mask name -> real image name.

A composite ``a3630_1_5.jpg`` has the mask ``a3630_1.png`` (drop the last ``_`` token)
and the real image ``a3630.jpg`` (drop the last two). HCOCO:
``c21070_1396052_1.jpg`` -> ``c21070_1396052.png`` -> ``c21070.jpg``. Hday2night bases
contain ``-`` but never ``_`` (``d90000001-11_1_1.jpg``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from raiha.io.errors import RaihaDataError

MASK_SUFFIX = ".png"
REAL_SUFFIX = ".jpg"


def _name_tokens(composite_name: str) -> list[str]:
    """Split the stem of a composite file name on ``_``; at least three tokens are needed."""
    name = PurePosixPath(composite_name).name
    stem = PurePosixPath(name).stem
    tokens = stem.split("_")
    if len(tokens) < 3 or any(token == "" for token in tokens):
        raise RaihaDataError(
            f"composite name {composite_name!r} does not follow the iHarmony4 pattern "
            "<real>_<object>_<variant>.jpg (e.g. a3630_1_5.jpg); rename the file or fix the split list"
        )
    return tokens


def mask_name_for(composite_name: str, mask_suffix: str = MASK_SUFFIX) -> str:
    """The mask file name of a composite: drop the last ``_`` token ("a3630_1_5.jpg" -> "a3630_1.png").

    Args:
        composite_name: a bare name or a path; only the last component is used.
        mask_suffix: extension of the mask files (".png" in iHarmony4).
    """
    return "_".join(_name_tokens(composite_name)[:-1]) + mask_suffix


def real_name_for(composite_name: str, real_suffix: str = REAL_SUFFIX) -> str:
    """The real image file name of a composite: drop the last two tokens ("a3630_1_5.jpg" -> "a3630.jpg")."""
    return "_".join(_name_tokens(composite_name)[:-2]) + real_suffix

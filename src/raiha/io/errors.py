"""The one exception every data problem raises (bad paths, lists, images, masks)."""

from __future__ import annotations


class RaihaDataError(ValueError):
    """A data problem; the message names the file, the problem and what to do about it."""

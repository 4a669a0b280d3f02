"""One composite's retrieval features on the gallery's grid (shared by stores and search)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from torch import Tensor

from raiha.retrieval.features.grids import mask_to_cells


@dataclass
class RetrievalQuery:
    """Features of one composite on the gallery's grid.

    Args:
        content: ``[h, w, C]`` content features of the composite.
        appearance: ``[h, w, D]`` HSV histograms of the composite.
        fg_cells: bool ``[h, w]``: cells touched by the mask (see :func:`make_query`).
        exclude_paths: gallery paths never returned (the composite's own real image).
    """

    content: Tensor
    appearance: Tensor
    fg_cells: Tensor
    exclude_paths: tuple[str, ...] = field(default_factory=tuple)


def make_query(
    content: Tensor, appearance: Tensor, mask: Tensor, exclude_paths: Sequence[str] = ()
) -> RetrievalQuery:
    """A query from a composite's grids and its full-resolution mask (``[H, W]``, > 0 = foreground)."""
    grid = (content.shape[0], content.shape[1])
    return RetrievalQuery(content, appearance, mask_to_cells(mask, grid), tuple(exclude_paths))


def normalise_path(path: str) -> str:
    """Path used for own-image exclusion: POSIX separators, no ``./``."""
    return PurePath(str(path)).as_posix()

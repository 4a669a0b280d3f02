"""Adds a reference (and SGF semantic grids) to every harmonization sample.

Training draws the reference uniformly from the composite's retrieved list plus one
augmented reference (SPEC 5); each source switches on and off. Evaluation on
RAHarmony4 draws one retrieved reference per composite with the evaluation seed
(SPEC 6). The draw of sample ``i`` depends only on ``(seed, epoch, i)``, so runs are
reproducible with any number of workers and a resumed run continues the same stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.references.augmented_reference import CropBox, apply_crop_box, draw_crop_box
from raiha.data.references.semantic_grids import SemanticGridLookup, zeros_like_grid
from raiha.io.tensors import rgb_to_tensor
from raiha.utils.seeding import keyed_generator

AUGMENTED = "<augmented>"
SOURCE_CODES = {"none": 0, "retrieved": 1, "augmented": 2}


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator seeded by ``(seed, epoch, index)`` alone."""
    return keyed_generator(f"{seed}:{epoch}:{index}")


class ReferenceDataset(Dataset[dict[str, Any]]):
    """Args:
    base: the harmonization samples.
    reference_lists: composite path -> retrieved reference paths (relative to the root).
    use_retrieved: draw from the retrieved lists.
    use_augmented: add the augmented reference to the candidates.
    semantic: grids for SGF (None: no ``semantic`` keys in the samples).
    seed: the draw's seed (training seed, or the evaluation seed).
    crop_fraction, min_foreground_fraction, crop_tries: the augmented reference (SPEC 5).
    match_masks: ``(composite_path, reference_path) -> [1, S, S] | None``, where the
        reference shows the foreground's identity (ground truth, for attention scores).
    """

    def __init__(
        self,
        base: HarmonizationDataset,
        *,
        reference_lists: Mapping[str, Sequence[str]] | None = None,
        use_retrieved: bool = True,
        use_augmented: bool = True,
        semantic: SemanticGridLookup | None = None,
        seed: int = 0,
        crop_fraction: float = 196 / 256,
        min_foreground_fraction: float = 0.5,
        crop_tries: int = 5,
        match_masks: Callable[[str, str], torch.Tensor | None] | None = None,
    ) -> None:
        self.base = base
        self.reference_lists = dict(reference_lists or {})
        self.use_retrieved = use_retrieved
        self.use_augmented = use_augmented
        self.semantic = semantic
        self.seed = seed
        self.epoch = 0
        self.crop_fraction = crop_fraction
        self.min_foreground_fraction = min_foreground_fraction
        self.crop_tries = crop_tries
        self.match_masks = match_masks
        self.subset_names = base.subset_names
        self._grid_channels: int | None = None  # read once, for the zero grid of "no reference"

    def set_epoch(self, epoch: int) -> None:
        """Change the draws (call at the start of every training epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def candidates(self, composite_path: str) -> list[str]:
        """Reference paths to draw from, ``AUGMENTED`` standing for the augmented one."""
        found = list(self.reference_lists.get(composite_path, [])) if self.use_retrieved else []
        return found + [AUGMENTED] if self.use_augmented else found

    def drawn_reference(self, index: int) -> str:
        """The reference path ``self[index]`` uses ("" when there is none), without loading images."""
        choices = self.candidates(self.base.records[index].composite)
        if not choices:
            return ""
        generator = sample_generator(self.seed, self.epoch, index)
        chosen = choices[int(torch.randint(len(choices), (), generator=generator))]
        return self.base.records[index].real if chosen == AUGMENTED else chosen

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.base[index]
        size = item["composite"].shape[-1]
        generator = sample_generator(self.seed, self.epoch, index)
        choices = self.candidates(item["composite_path"])
        source = "none"
        box: CropBox | None = None
        if not choices:
            reference = torch.zeros_like(item["composite"])
            reference_path = ""
        else:
            reference_path = choices[int(torch.randint(len(choices), (), generator=generator))]
            if reference_path == AUGMENTED:
                source = "augmented"
                box = draw_crop_box(
                    item["mask"], generator, crop_size=round(self.crop_fraction * size),
                    min_foreground_fraction=self.min_foreground_fraction, tries=self.crop_tries,
                )
                reference = apply_crop_box(item["real"], box)
                reference_path = self.base.records[index].real
            else:
                source = "retrieved"
                reference = self._load_reference(reference_path, size)
        item["reference"] = reference  # [3, S, S] in [-1, 1]
        item["reference_valid"] = source != "none"
        item["reference_source"] = SOURCE_CODES[source]
        item["reference_path"] = reference_path
        if self.match_masks is not None:
            match = self.match_masks(item["composite_path"], reference_path) if source == "retrieved" else None
            item["reference_match"] = match if match is not None else torch.zeros_like(item["mask"])
        if self.semantic is not None:
            item["semantic"] = self.semantic.grid(item["composite_path"])  # [C, h, w]
            item["reference_semantic"] = self._reference_grid(source, reference_path, box)
        return item

    def _load_reference(self, relative: str, size: int) -> torch.Tensor:
        if size != self.base.image_size:
            raise ValueError(f"reference size {size} differs from the dataset's {self.base.image_size}")
        # the resized cache holds every real image of the split (the usual gallery) at size S
        return rgb_to_tensor(self.base.load_rgb_at_size(relative))  # [3, S, S]

    def _reference_grid(self, source: str, reference_path: str, box: CropBox | None) -> torch.Tensor:
        assert self.semantic is not None
        if source == "none":
            if self._grid_channels is None:
                self._grid_channels = self.semantic.channels
            return zeros_like_grid(self._grid_channels, self.semantic.grid_size)
        grid = self.semantic.grid(reference_path)  # [C, h, w]
        if box is not None:
            # crop + resample the cached grid of the real image exactly like the image
            grid = apply_crop_box(grid, box)
        return grid

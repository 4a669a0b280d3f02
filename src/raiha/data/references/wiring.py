"""Connect the datamodule to reference lists and semantic grids.

Lists come from RAHarmony4 JSONL files (the authors' format: a user's copy of their
published lists, or lists written by ``python -m raiha.retrieve``) or, with "auto",
from the retrieval pipeline, run once in ``prepare_data`` and cached under a key of
its settings. Semantic grids for SGF are read from the pipeline's feature stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raiha.data.harmonization_dataset import HarmonizationDataset
from raiha.data.references.reference_dataset import ReferenceDataset
from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.data.references.settings import AUTO, SPLITS, ReferenceSettings
from raiha.io.errors import RaihaDataError
from raiha.io.reference_lists import read_reference_list, reference_map
from raiha.utils.rank_group import SINGLE_PROCESS, RankGroup

log = logging.getLogger(__name__)


@dataclass
class ReferenceArtifacts:
    """Reference lists per split (composite path -> reference paths) and the grid lookup."""

    lists: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    semantic: SemanticGridLookup | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # the retrieval pipeline's summary (counts per split, settings key) when it built the lists
    pipeline_summary: dict[str, Any] | None = None


def _resolve(root: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else root / candidate


def prepare_references(
    settings: ReferenceSettings,
    root: Path,
    data_dir: Path,
    *,
    build: bool,
    group: RankGroup = SINGLE_PROCESS,
) -> ReferenceArtifacts:
    """Read (or, with ``build``, first create) what the reference setting needs.

    Args:
        settings: the datamodule's reference settings (retrieval settings resolved).
        root: the dataset root (paths in lists are relative to it).
        data_dir: where the retrieval pipeline caches its stores and lists.
        build: run the retrieval pipeline if its outputs are missing (rank zero, once; or
            every rank of ``group``, which then share the search).
        group: the job's ranks (DDP), when they build together.
    """
    pipeline_outputs = None
    if settings.needs_pipeline:
        from raiha.retrieval.pipeline import run_reference_pipeline

        retrieval = settings.retrieval
        pipeline_outputs = run_reference_pipeline(
            root=root, data_dir=data_dir, image_size=int(retrieval.image_size),
            settings=retrieval.to_dict(), build=build, group=group,
        )
    artifacts = ReferenceArtifacts()
    if pipeline_outputs is not None:
        artifacts.pipeline_summary = pipeline_outputs.summary
    for split in SPLITS:
        spec = settings.list_spec(split)
        if spec is None:
            artifacts.lists[split] = {}
            artifacts.sources[split] = "none (augmented references only)"
            continue
        path = pipeline_outputs.lists[split] if spec == AUTO else _resolve(root, str(spec))
        if not Path(path).is_file():
            raise RaihaDataError(
                f"reference list {path} ({split}) not found: set data.references.{split}_list to a "
                "RAHarmony4 JSONL file, to 'auto' (built by the retrieval pipeline) or to null"
            )
        artifacts.lists[split] = reference_map(read_reference_list(path))
        artifacts.sources[split] = str(path)
    if settings.semantic:
        artifacts.semantic = SemanticGridLookup(pipeline_outputs.stores)
        check_grid_width(artifacts.semantic, settings)
    log.info("references: %s; semantic grids: %s", artifacts.sources,
             "on" if artifacts.semantic is not None else "off")
    return artifacts


def check_grid_width(lookup: SemanticGridLookup, settings: ReferenceSettings) -> None:
    """The stores' grids are as wide as ``retrieval.feature_dim`` says (the network's SGF
    ``semantic_channels`` is set from it: a mismatch would fail deep inside the network)."""
    expected = settings.retrieval.feature_dim
    if expected is not None and lookup.channels != expected:
        raise RaihaDataError(
            f"the {settings.retrieval.extractor!r} extractor's semantic grids have {lookup.channels} "
            f"channels but data.references.retrieval.feature_dim is {expected} (it sets "
            "model.net.semantic_channels): set feature_dim to the extractor's width"
        )


def wrap_with_references(
    dataset: HarmonizationDataset,
    artifacts: ReferenceArtifacts,
    settings: ReferenceSettings,
    split: str,
    seed: int,
    *,
    training: bool,
    match_masks: Any = None,
) -> ReferenceDataset:
    """``dataset`` with references drawn from ``artifacts.lists[split]`` (plus the augmented one
    when ``training``). Evaluation always draws retrieved references only, as RAHarmony4
    does: ``use_retrieved`` / ``use_augmented`` are training ablations, and every row of
    Table III is tested on the same composites with the same references."""
    return ReferenceDataset(
        dataset,
        reference_lists=artifacts.lists.get(split, {}),
        use_retrieved=settings.use_retrieved if training else True,
        use_augmented=settings.use_augmented if training else False,
        semantic=artifacts.semantic,
        seed=seed,
        crop_fraction=settings.crop_fraction,
        min_foreground_fraction=settings.min_foreground_fraction,
        crop_tries=settings.crop_tries,
        match_masks=match_masks,
    )

"""``python -m raiha.retrieve [retrieval=NAME] [data_source=iharmony4 root=DIR] [key=value ...]``.

Builds (or reuses) the feature stores and the RAHarmony4-format reference lists of the
chosen splits (:func:`raiha.retrieval.pipeline.build_reference_lists`, cached under
``${paths.data_dir}/retrieval``). On the synthetic world the lists are also scored
against the ground truth: ``retrieval_score.json`` next to the lists. The run folder
(``${paths.output_dir}``) receives ``retrieval.json``: list paths, counts and scores.

Several processes share the search: ``torchrun --nproc_per_node 8 -m raiha.retrieve ...``
(or SLURM tasks exporting ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Rank
zero builds the stores, every rank scores its parts of the queries, rank zero merges them
and writes the lists and the reports; a job killed midway resumes from the parts it wrote.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from raiha.io.atomic_io import atomic_write_json
from raiha.io.errors import RaihaDataError
from raiha.retrieval.ground_truth_score import score_reference_lists, write_score
from raiha.retrieval.pipeline import build_reference_lists
from raiha.retrieval.settings import RetrievalSettings
from raiha.utils.config import CONFIG_DIR
from raiha.utils.rank_group import rank_group_from_environment
from raiha.world import SyntheticWorldConfig, ensure_world, load_ground_truth

log = logging.getLogger(__name__)

SCORE_FILE = "retrieval_score.json"
DATA_SOURCES = ("synthetic", "iharmony4")


def dataset_root(cfg: DictConfig) -> Path:
    """The synthetic world (generated once under ``paths.data_dir``) or the iHarmony4 ``root``."""
    if cfg.data_source == "synthetic":
        fields = OmegaConf.to_container(cfg.synthetic, resolve=True)
        return ensure_world(cfg.paths.data_dir, SyntheticWorldConfig.from_dict(fields))
    if cfg.data_source != "iharmony4":
        raise ValueError(f"data_source must be one of {DATA_SOURCES}, got {cfg.data_source!r}")
    if not cfg.root:
        raise RaihaDataError(
            "data_source=iharmony4 needs root=/path/to/iHarmony4 (or the IHARMONY4_ROOT variable)"
        )
    return Path(str(cfg.root)).expanduser()


def retrieve(cfg: DictConfig) -> dict[str, Any]:
    """Run the retrieval job of ``cfg``; returns the record written to ``retrieval.json``."""
    settings = RetrievalSettings.from_dict(OmegaConf.to_container(cfg.retrieval, resolve=True))
    # retrieval.image_size null: the world's size (the harmonizer's 1/8 grid on that world)
    settings = settings.with_image_size(int(cfg.synthetic.image_size))
    group = rank_group_from_environment()
    root = dataset_root(cfg) if group.is_zero else None
    group.barrier()  # the synthetic world exists
    root = root or dataset_root(cfg)
    outputs = build_reference_lists(
        root,
        cfg.paths.data_dir,
        settings,
        splits=list(cfg.splits),
        progress=bool(cfg.progress),
        rebuild=bool(cfg.rebuild),
        group=group,
    )
    record: dict[str, Any] = {
        "root": str(root),
        "lists": {split: str(path) for split, path in outputs.lists.items()},
        "reused": outputs.reused,
        "summary": outputs.summary,
    }
    if not group.is_zero:
        return record  # the reports are rank zero's
    if cfg.data_source == "synthetic":
        score = score_reference_lists(outputs.lists, load_ground_truth(root), cap=settings.max_refs)
        record["score_file"] = str(write_score(outputs.lists_dir / SCORE_FILE, score))
        record["score"] = {split: result["all"] for split, result in score.items()}
        _print_score(score)
    atomic_write_json(Path(cfg.paths.output_dir) / "retrieval.json", record)
    log.info("reference lists: %s", record["lists"])
    return record


def _print_score(score: dict[str, Any]) -> None:
    """A table of micro precision/recall per split and subset."""
    table = Table(title="retrieval vs ground truth (micro precision / recall)")
    for column in ("split", "group", "queries", "empty", "precision", "recall", "same light"):
        table.add_column(column)
    for split, result in score.items():
        groups = {"all": result["all"], **result["subsets"], **result["patterns"]}
        for name, block in groups.items():
            table.add_row(
                split,
                name,
                str(block["queries"]),
                str(block["empty"]),
                str(block["precision_micro"]),
                str(block["recall_micro"]),
                str(block["same_illuminant"]),
            )
    Console().print(table)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="retrieve")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    retrieve(cfg)


if __name__ == "__main__":
    main()

"""``python -m raiha.score predictions=DIR data.root=DIR [protocol=paper] [resolution=original]``.

Scores any method's harmonized test images (PCT-Net's, DucoNet's, raiha's own
``eval.save_predictions``) under a named protocol (:mod:`raiha.metrics.protocols`) at a
chosen resolution, and writes the same ``metrics.json`` / ``per_image.csv`` / tables as
``raiha.eval``. The composite baseline (input = output) is scored beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from raiha.evaluation.image_scoring import parse_resolution
from raiha.evaluation.prediction_folder import (
    ScoredPredictions,
    index_predictions,
    match_predictions,
)
from raiha.evaluation.results_io import MetricsRecord, record_from_rows, report_results
from raiha.io.errors import RaihaDataError
from raiha.io.reference_lists import read_reference_list, reference_map
from raiha.io.split_lists import HarmonizationRecord, read_split
from raiha.metrics.protocols import BACKGROUNDS, get_protocol
from raiha.utils.config import CONFIG_DIR

log = logging.getLogger(__name__)


def _records(cfg: DictConfig) -> tuple[Path, list[HarmonizationRecord]]:
    """The dataset root and the test records to score (restricted to a RAHarmony4 list if given)."""
    if not cfg.data.get("root"):
        raise RaihaDataError("data.root is unset: pass data.root=/path/to/iHarmony4 (or set IHARMONY4_ROOT)")
    root = Path(cfg.data.root).expanduser()
    subsets = list(cfg.data.subsets) if cfg.data.get("subsets") else None
    records = read_split(root, cfg.data.get("split", "test"), subsets)
    listed_path = cfg.data.get("reference_list")
    if listed_path:
        path = Path(listed_path).expanduser()
        listed = reference_map(read_reference_list(path if path.is_absolute() else root / path))
        records = [record for record in records if listed.get(record.composite)]
        if not records:
            raise RaihaDataError(f"no test composite of {root} has references in {listed_path}")
    return root, records


def score(cfg: DictConfig) -> MetricsRecord:
    """Score ``cfg.predictions`` against the test set; returns the record written to ``metrics.json``."""
    protocol = get_protocol(str(cfg.protocol))
    resolution = parse_resolution(cfg.resolution)
    background = str(cfg.get("background") or protocol.background)
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background handling {background!r}; choose one of {list(BACKGROUNDS)}")
    root, records = _records(cfg)
    index = index_predictions(cfg.predictions, str(cfg.get("name_suffix") or ""))
    predictions = match_predictions(records, index, str(cfg.get("on_extra", "error")))
    dataset = ScoredPredictions(
        root, records, predictions, protocol, resolution,
        background=background, on_size_mismatch=str(cfg.get("on_size_mismatch", "refuse")),
    )  # fmt: skip
    workers = int(cfg.get("num_workers", 0))
    loader = DataLoader(
        dataset, batch_size=None, num_workers=workers, prefetch_factor=1 if workers > 0 else None
    )  # one decoded image per worker at a time
    rows: list[dict[str, Any]] = list(loader)
    subset_names = list(dict.fromkeys(record.subset for record in records))
    record = record_from_rows(
        rows, protocol=protocol.name, dataset=str(root), subset_names=subset_names,
        fg_ratio_edges=list(cfg.get("fg_ratio_edges") or []) or None,
        extra={"resolution": str(resolution), "background": background, "predictions": str(cfg.predictions),
               "reference_list": cfg.data.get("reference_list")},
    )  # fmt: skip
    title = f"{Path(str(cfg.predictions)).name} ({protocol.name} protocol, {resolution}, background {background})"
    report_results(cfg.output_dir, record, subset_order=subset_names, title=title)
    return record


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="score")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the MSE (All)."""
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    return float(score(cfg)["all"]["mse"])


if __name__ == "__main__":
    main()

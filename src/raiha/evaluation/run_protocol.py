"""The test protocol shared by ``raiha.train`` and ``raiha.eval``.

Non-reference (iHarmony4, Table I): one test run. Retrieval-augmented (RAHarmony4,
Table II): one run per seed of ``reference_seeds``, each drawing one reference per
composite; the record holds every seed's results and their mean and std.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from raiha.data.references.settings import ReferenceSettings
from raiha.evaluation.results_io import TEST_RESULTS_FILE, build_metrics_record
from raiha.evaluation.results_table import aggregate_runs


def uses_reference_protocol(cfg: DictConfig) -> bool:
    """Whether the test draws references (data.references.enabled and model.evaluate_with_reference)."""
    references = ReferenceSettings.from_config(_plain(cfg.data.get("references")), image_size=int(cfg.data.image_size))
    return references.enabled and bool(cfg.model.get("evaluate_with_reference", False))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def run_test_protocol(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    cfg: DictConfig,
    *,
    ckpt_path: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Test as the protocol says; returns the ``metrics.json`` record."""
    with_references = uses_reference_protocol(cfg)
    seeds = [int(seed) for seed in (cfg.get("reference_seeds") or [0])] if with_references else [None]
    per_seed = []
    for seed in seeds:
        if seed is not None:
            datamodule.set_reference_seed(seed)
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False)
        results = _test_results(trainer, model)
        if datamodule.test_set is None:  # tested in spawned processes: the names are read here
            datamodule.setup("test")
            if seed is not None:
                datamodule.set_reference_seed(seed)
        per_seed.append({"seed": seed, **results, "rows": image_rows(results, datamodule.test_set, seed)})
    model_results = aggregate_runs([run["model"] for run in per_seed]) if with_references else per_seed[0]["model"]
    attention = [run["model"]["attention"] for run in per_seed if run["model"].get("attention")]
    attention_extra = {"attention": mean_attention(attention)} if attention else {}
    return build_metrics_record(
        protocol=str(model.hparams.get("protocol", cfg.model.protocol)),
        dataset=cfg.data.source,
        model=model_results,
        composite=per_seed[0]["composite"],
        extra={
            "setting": "reference" if with_references else "non_reference",
            "experiment": cfg.get("experiment_name"),
            "seed": cfg.get("seed"),
            "per_seed": [
                {"seed": run["seed"], "subsets": run["model"]["subsets"], "all": run["model"]["all"],
                 **({"attention": run["model"]["attention"]} if run["model"].get("attention") else {})}
                for run in per_seed
            ] if with_references else [],
            **attention_extra,
            **(extra or {}),
        },
        per_image_rows=[row for run in per_seed for row in run["rows"]],
        subset_names=list(datamodule.subset_names),
        fg_ratio_edges=cfg.get("eval", {}).get("fg_ratio_edges") if cfg.get("eval") else None,
    )


def image_rows(results: dict[str, Any], dataset: Any, seed: int | None) -> list[dict[str, Any]]:
    """``per_image.csv`` rows of one test run: the module's per-image rows (model and composite)
    joined by ``sample_index`` with the dataset's composite names and drawn references."""
    per_image = results.get("per_image") or {}
    model_rows, composite_rows = per_image.get("model") or [], per_image.get("composite") or []
    composite_by_index = {row["sample_index"]: row for row in composite_rows}
    records = getattr(dataset, "records", None) or dataset.base.records
    drawn = getattr(dataset, "drawn_reference", None) if seed is not None else None
    rows = []
    for row in model_rows:
        index = int(row["sample_index"])
        baseline = composite_by_index.get(index, {})
        rows.append({
            "name": records[index].composite, "subset": row["subset"], "fg_ratio": row["fg_ratio"],
            "reference_seed": seed, "reference": drawn(index) if drawn is not None else None,
            "mse": row["mse"], "psnr": row["psnr"], "fmse": row["fmse"],
            **{f"composite_{key}": baseline.get(key) for key in ("mse", "psnr", "fmse")},
        })  # fmt: skip
    return rows


def _test_results(trainer: L.Trainer, model: L.LightningModule) -> dict[str, Any]:
    """The test's results: the module's attribute, or the file rank zero wrote when the test
    ran in spawned processes (``ddp_spawn``: the launching process never sees the attribute)."""
    results = getattr(model, "test_results", None)
    if results:
        return results
    path = Path(trainer.default_root_dir) / TEST_RESULTS_FILE
    if not path.is_file():
        raise RuntimeError(f"the test produced no results (neither on the module nor in {path})")
    return json.loads(path.read_text(encoding="utf-8"))


def mean_attention(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean over seeds of every attention-accuracy figure
    (:class:`raiha.evaluation.attention_accuracy.AttentionOnMatch`), plus ``ratio``: how many
    times more attention the matching object gets than uniform attention over the keys
    would give it (``attention_on_match / match_key_share``)."""
    keys = [key for key in per_seed[0] if key != "n"]
    mean = {key: sum(float(a[key]) for a in per_seed) / len(per_seed) for key in keys}
    baseline = mean.get("match_key_share", mean["match_area_share"])
    mean["ratio"] = mean["attention_on_match"] / baseline if baseline > 0 else float("nan")
    return {**mean, "n": int(per_seed[0]["n"]), "seeds": len(per_seed)}


def protocol_title(cfg: DictConfig) -> str:
    """A table title naming the dataset, protocol and setting."""
    setting = (
        f"references, {len(cfg.get('reference_seeds') or [0])} seeds" if uses_reference_protocol(cfg) else "no reference"
    )
    return f"{cfg.data.source} test ({cfg.model.protocol} protocol, {setting})"

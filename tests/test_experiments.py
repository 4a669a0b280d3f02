"""Experiments as deltas: every Table III experiment in both settings differs from `raiha`
only in what it ablates, old names still work, every experiment names itself, debug
presets win in either order, and the values that reach the datamodule, the model and the
retrieval are those of the configs before the restructuring (a table, below)."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from raiha.data.references.settings import ReferenceSettings
from raiha.utils.config import CONFIG_DIR
from tests.hydra_helpers import compose_config

EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))
SETTINGS = {"real": "", "synthetic": "_synthetic"}
# what each Table III experiment changes relative to `raiha` in the same setting
ABLATES = {
    "ablation_sgf": {"data.references.semantic", "model.net.attention", "model.net.semantic_channels"},
    "ablation_no_aug": {"data.references.use_augmented"},
    "ablation_no_retrieval": {"data.references.use_retrieved"},
    "ablation_eps_a_07_08": {"data.references.retrieval.eps_a_range"},
    "ablation_eps_a_08_09": {"data.references.retrieval.eps_a_range"},
    "non_reference": {"model.reference_probability", "model.evaluate_with_reference"},
}
NAMING = {"experiment_name", "tags", "logger.wandb.tags"}  # logger.wandb.tags: ${tags}


def _compose(overrides: list[str]) -> dict[str, Any]:
    cfg = compose_config("train", overrides, output_dir="/out", data_dir="/data")
    composed = OmegaConf.to_container(cfg, resolve=True)
    composed.pop("command_line_overrides", None)  # the words typed, not the run they compose to
    return composed


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {key: value for k, v in node.items() for key, value in _flat(v, f"{prefix}{k}.").items()}
    return {prefix[:-1]: node}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    flat_a, flat_b = _flat(a), _flat(b)
    return {key for key in set(flat_a) | set(flat_b) if flat_a.get(key, "<absent>") != flat_b.get(key, "<absent>")}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("experiment", sorted(ABLATES))
def test_each_ablation_differs_from_raiha_only_in_what_it_ablates(experiment: str, setting: str) -> None:
    raiha = _compose(["+experiment=raiha", f"setting={setting}"])
    ablation = _compose([f"+experiment={experiment}", f"setting={setting}"])
    assert _diff(raiha, ablation) - NAMING == ABLATES[experiment]
    assert ablation["experiment_name"] == experiment + SETTINGS[setting]
    assert ablation["tags"] == [raiha["data"]["source"], "table3", experiment]


@pytest.mark.parametrize("experiment", ["raiha", *sorted(ABLATES)])
def test_synthetic_names_are_the_synthetic_setting(experiment: str) -> None:
    """`+experiment=NAME_synthetic` (the old files' names) is `+experiment=NAME setting=synthetic`."""
    assert _compose([f"+experiment={experiment}_synthetic"]) == _compose([f"+experiment={experiment}", "setting=synthetic"])
    assert _compose([f"+experiment={experiment}"]) == _compose([f"+experiment={experiment}", "setting=real"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_names_itself(experiment: str) -> None:
    assert _compose([f"+experiment={experiment}"])["experiment_name"] == experiment


@pytest.mark.parametrize("experiment", ["raiha", "ablation_sgf_synthetic", "paper_recipe"])
def test_eval_composes_an_experiments_setting(experiment: str) -> None:
    """`python -m raiha.eval +experiment=NAME ckpt_path=...` tests in the experiment's setting."""
    train = _compose([f"+experiment={experiment}"])
    evaluation = OmegaConf.to_container(
        compose_config("eval", [f"+experiment={experiment}", "ckpt_path=/x.ckpt"], output_dir="/out", data_dir="/data"),
        resolve=True,
    )
    assert evaluation["data"] == train["data"] and evaluation["model"] == train["model"]


@pytest.mark.parametrize("debug", ["fdr", "limit"])
@pytest.mark.parametrize("experiment", ["paper_recipe", "raiha", "ablation_sgf_synthetic"])
def test_debug_presets_win_whatever_their_order(experiment: str, debug: str) -> None:
    after = _compose([f"+experiment={experiment}", f"+debug={debug}"])
    before = _compose([f"+debug={debug}", f"+experiment={experiment}"])
    assert before == after
    preset = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "debug" / f"{debug}.yaml"))
    for key, value in _flat(preset).items():  # every key the preset sets holds its value
        assert _flat(after)[key] == value, key


# The values that reach the datamodule, the model and the retrieval, composed with the configs
# before they became deltas (one row per experiment; `_synthetic` rows in the second block):
# data source, image size, references on, retrieved, augmented, SGF grids, eps_a_range,
# retrieval extractor and image size, attention, semantic channels, reference probability,
# evaluation with references, max epochs, lr.
BEFORE = {
    "raiha": ("iharmony4", 256, True, True, True, True, None, "dvt", 448, "sgf", 768, 0.5, True, 60, 0.004),
    "ablation_sgf": ("iharmony4", 256, True, True, True, False, None, "dvt", 448, "plain", 0, 0.5, True, 60, 0.004),
    "ablation_no_aug": ("iharmony4", 256, True, True, False, True, None, "dvt", 448, "sgf", 768, 0.5, True, 60, 0.004),
    "ablation_no_retrieval": ("iharmony4", 256, True, False, True, True, None, "dvt", 448, "sgf", 768, 0.5, True, 60,
                              0.004),
    "ablation_eps_a_07_08": ("iharmony4", 256, True, True, True, True, (0.7, 0.8), "dvt", 448, "sgf", 768, 0.5, True,
                             60, 0.004),
    "ablation_eps_a_08_09": ("iharmony4", 256, True, True, True, True, (0.8, 0.9), "dvt", 448, "sgf", 768, 0.5, True,
                             60, 0.004),
    "non_reference": ("iharmony4", 256, True, True, True, True, None, "dvt", 448, "sgf", 768, 0.0, False, 60, 0.004),
    "raiha_synthetic": ("synthetic", 64, True, True, True, True, None, "synthetic", 64, "sgf", 192, 1.0, True, 8,
                        0.002),
    "ablation_sgf_synthetic": ("synthetic", 64, True, True, True, False, None, "synthetic", 64, "plain", 0, 1.0, True,
                               8, 0.002),
    "ablation_no_aug_synthetic": ("synthetic", 64, True, True, False, True, None, "synthetic", 64, "sgf", 192, 1.0,
                                  True, 8, 0.002),
    "ablation_no_retrieval_synthetic": ("synthetic", 64, True, False, True, True, None, "synthetic", 64, "sgf", 192,
                                        1.0, True, 8, 0.002),
    "ablation_eps_a_07_08_synthetic": ("synthetic", 64, True, True, True, True, (0.7, 0.8), "synthetic", 64, "sgf",
                                       192, 1.0, True, 8, 0.002),
    "ablation_eps_a_08_09_synthetic": ("synthetic", 64, True, True, True, True, (0.8, 0.9), "synthetic", 64, "sgf",
                                       192, 1.0, True, 8, 0.002),
    "non_reference_synthetic": ("synthetic", 64, True, True, True, True, None, "synthetic", 64, "sgf", 192, 0.0,
                                False, 8, 0.002),
    "paper_recipe": ("iharmony4", 256, False, True, True, False, None, "synthetic", 256, "plain", 0, 0.0, False, 60,
                     0.004),
    "synthetic_quick": ("synthetic", 64, False, True, True, False, None, "synthetic", 64, "plain", 0, 0.0, False, 8,
                        0.002),
}


@pytest.mark.parametrize("experiment", sorted(BEFORE))
def test_the_values_that_reach_the_run_are_unchanged(experiment: str) -> None:
    cfg = _compose([f"+experiment={experiment}"])
    data, model = cfg["data"], cfg["model"]
    references = ReferenceSettings.from_config(data["references"], image_size=data["image_size"])
    retrieval = references.retrieval
    row = (data["source"], data["image_size"], references.enabled, references.use_retrieved,
           references.use_augmented, references.semantic, retrieval.eps_a_range, retrieval.extractor,
           retrieval.image_size, model["net"]["attention"], model["net"]["semantic_channels"],
           model["reference_probability"], model["evaluate_with_reference"], cfg["trainer"]["max_epochs"],
           model["lr"])  # fmt: skip
    assert row == BEFORE[experiment]
    assert retrieval.store_composites or not references.semantic  # SGF keeps the composites' stores


def test_sgf_needs_one_switch() -> None:
    """attention=plain|sgf sets the network's attention, its semantic width and the grids together."""
    plain = _compose(["+experiment=raiha_synthetic", "attention=plain"])
    assert (plain["model"]["net"]["attention"], plain["model"]["net"]["semantic_channels"]) == ("plain", 0)
    assert plain["data"]["references"]["semantic"] is False
    sgf = _compose(["+experiment=ablation_sgf", "attention=sgf"])
    assert (sgf["model"]["net"]["attention"], sgf["model"]["net"]["semantic_channels"]) == ("sgf", 768)
    assert sgf["data"]["references"]["semantic"] is True

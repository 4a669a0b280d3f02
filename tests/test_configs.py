"""Every config composes, resolves and instantiates its data and model."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from raiha.data.datamodule import HarmonizationDataModule
from raiha.io.errors import RaihaDataError
from raiha.training.lit_module import HarmonizationModule
from raiha.utils.config import CONFIG_DIR, REPO_ROOT, wandb_should_run_offline
from tests.hydra_helpers import compose_config

EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))


def _compose(tmp_path: Path, name: str, overrides: list[str]):
    return compose_config(name, overrides, output_dir=tmp_path / "out", data_dir=tmp_path / "data")


def test_there_are_experiments() -> None:
    assert {"paper_recipe", "synthetic_quick"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_model(tmp_path: Path, experiment: str) -> None:
    cfg = _compose(tmp_path, "train", [f"+experiment={experiment}", "+debug=fdr"])
    resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert resolved["paths"]["output_dir"] == str(tmp_path / "out")
    assert cfg.hydra_job_chdir is False
    model = hydra.utils.instantiate(cfg.model)
    assert isinstance(model, HarmonizationModule)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, HarmonizationDataModule)


@pytest.mark.parametrize("group_value", ["trainer=cpu", "trainer=ddp_spawn", "logger=wandb", "logger=none",
                                         "callbacks=none", "data=iharmony4", "+debug=limit"])
def test_config_groups_compose(tmp_path: Path, group_value: str) -> None:
    cfg = _compose(tmp_path, "train", [group_value])
    OmegaConf.to_container(cfg, resolve=True)


def test_eval_config_requires_a_checkpoint(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "eval", [])
    assert OmegaConf.is_missing(cfg, "ckpt_path")
    cfg = _compose(tmp_path, "eval", ["ckpt_path=/x.ckpt"])
    assert cfg.ckpt_path == "/x.ckpt"


def test_paths_default_to_the_checkout_from_inside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a subfolder of the checkout, data/ and logs/ are the checkout's (its .project-root)."""
    monkeypatch.chdir(REPO_ROOT / "src" / "raiha")
    monkeypatch.delenv("RAIHA_DATA_DIR", raising=False)
    monkeypatch.delenv("RAIHA_LOG_DIR", raising=False)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    GlobalHydra.instance().clear()
    assert cfg.paths.root_dir == str(REPO_ROOT)
    assert cfg.paths.data_dir == str(REPO_ROOT / "data")


def test_paper_recipe_holds_the_paper_numbers(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "train", ["+experiment=paper_recipe"])
    assert cfg.data.image_size == 256 and cfg.data.batch_size == 48
    assert cfg.trainer.max_epochs == 60 and cfg.model.lr_constant_epochs == 40
    assert cfg.model.lr == pytest.approx(0.004)
    assert cfg.model.betas == [0.9, 0.999]


def test_iharmony4_without_root_says_how_to_set_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IHARMONY4_ROOT", raising=False)
    cfg = _compose(tmp_path, "train", ["+experiment=paper_recipe"])
    datamodule = hydra.utils.instantiate(cfg.data)
    with pytest.raises(RaihaDataError, match=r"data.root=/path/to/iHarmony4"):
        datamodule.setup("fit")


def test_wandb_goes_offline_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    assert wandb_should_run_offline() is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_should_run_offline() is False
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_should_run_offline() is True


def test_authors_generator_loads_from_config(tmp_path: Path, shared_data_dir: Path) -> None:
    """model=rhnet_authors reads the authors' weights and reproduces their output."""
    import torch

    golden_path = shared_data_dir / "golden" / "authors_rhnet_w8.pt"
    if not golden_path.is_file():
        pytest.skip(f"{golden_path} is absent")
    golden = torch.load(golden_path, map_location="cpu", weights_only=True)
    weights = tmp_path / "latest_net_G.pth"
    torch.save(golden["state_dict"], weights)
    cfg = _compose(tmp_path, "train", ["model=rhnet_authors", f"model.net.path_or_state_dict={weights}"])
    net = hydra.utils.instantiate(cfg.model).net.eval()
    case = golden["cases"]["single"]
    with torch.no_grad():
        out = net(case["x"].float(), case["mask"].float(), case["dvt"].float()).image
    torch.testing.assert_close(out, case["out"].float(), atol=1e-5, rtol=0)


def test_rhnet_config_builds_the_authors_layout(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "train", ["model=rhnet"])
    net = hydra.utils.instantiate(cfg.model).net
    assert type(net).__name__ == "RHNet"
    assert sum(p.numel() for p in net.parameters()) == 11_460_271


def test_synthetic_setting_runs_on_rhnet_without_the_unet_only_options(tmp_path: Path) -> None:
    """raiha_synthetic's U-Net-only keys (attention_stride, output_mode) are refused by rhnet
    by name; dropping them, as the config's comment says, builds rhnet with the rest of
    the setting (SGF over the 192-channel grid, colour values, identity fusion init)."""
    cfg = _compose(tmp_path, "train", ["+experiment=raiha_synthetic", "model=rhnet", "model.net.base_width=4"])
    with pytest.raises(Exception, match="attention_stride"):
        hydra.utils.instantiate(cfg.model)
    overrides = ["~model.net.attention_stride", "~model.net.output_mode"]
    cfg = _compose(tmp_path, "train", ["+experiment=raiha_synthetic", "model=rhnet", "model.net.base_width=4", *overrides])
    net = hydra.utils.instantiate(cfg.model).net
    assert type(net).__name__ == "RHNet"
    assert net.fusion.semantic_channels == 192 and net.fusion.value_colour

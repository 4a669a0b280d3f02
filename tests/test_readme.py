"""Issue 17 item 10 (and the README sides of items 4, 6, 9): the README says where each
external asset comes from, GPU vs CPU, every experiment, honest first-run times, the mask
rule, the Trainer options and where outputs go."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from raiha.utils.config import CONFIG_DIR

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}.*?$(.*?)(?=^#+ )", README, flags=re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_every_experiment_is_listed_with_a_line() -> None:
    table = _section("Experiments")
    names = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))
    assert f"{len(names)} of them" in table
    for name in names:
        assert re.search(rf"^\| `{name}` \| \S.+\|$", table, flags=re.M), f"{name} is not in the experiment table"


def test_external_assets_say_where_to_get_them_and_where_to_put_them() -> None:
    assets = _section("External assets")
    for needle in ("github.com/bcmi/Image-Harmonization-Dataset-iHarmony4", "data.root=", "IHARMONY4_ROOT",
                   "timm/vit_base_patch14_reg4_dinov2.lvd142m", "HF_HOME", "pretrained_file=",
                   "github.com/Jiawei-Yang/Denoising-ViT", "DVT_DENOISER_DIR", "denoiser_checkpoint="):  # fmt: skip
        assert needle in assets, needle


def test_gpu_cpu_and_first_run_times_are_honest() -> None:
    gpu = _section("GPU or CPU")
    assert "trainer=cpu" in gpu and "data.references.retrieval.device=cpu" in gpu and "stop" in gpu
    times = _section("First-run times")
    assert "7 minutes" in times and "data/retrieval/" in times
    assert "a few seconds" not in README


def test_the_mask_rule_and_folder_matching_are_stated() -> None:
    assert "foreground when its largest channel is > 127" in README
    assert "mask_mode=binary" in README and "mask_mode=soft" in README
    assert "`photo.<any image extension>`" in README and "`photo_mask.<ext>`" in README


def test_every_trainer_option_is_listed_with_its_default() -> None:
    keys = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml"), resolve=False)
    for key, value in keys.items():
        if key in ("_target_", "default_root_dir"):
            continue
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert re.search(rf"`{key}`[^`(]*(?:`[^`]*`[^`(]*)*\({re.escape(shown)}", README), f"trainer.{key} ({shown})"


def test_output_locations_are_stated() -> None:
    assert ".project-root" in README and "RAIHA_LOG_DIR" in README and "raiha/conf" in README

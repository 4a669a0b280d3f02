"""Issue 17 item 9: default data/ and logs/ come from where the user works (the project root
holding ``.project-root``, else the current directory), not from where raiha is installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from raiha.utils.config import CONFIG_DIR, PROJECT_ROOT_MARKER, REPO_ROOT, find_project_root


def _paths(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> dict[str, str]:
    monkeypatch.chdir(cwd)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    GlobalHydra.instance().clear()
    return {key: cfg.paths[key] for key in ("root_dir", "data_dir", "log_dir")}


@pytest.fixture
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAIHA_DATA_DIR", raising=False)
    monkeypatch.delenv("RAIHA_LOG_DIR", raising=False)


def test_a_subfolder_of_a_project_writes_to_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_overrides: None
) -> None:
    project = tmp_path / "my_project"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / PROJECT_ROOT_MARKER).touch()
    paths = _paths(monkeypatch, project / "notebooks" / "deep")
    assert paths == {"root_dir": str(project), "data_dir": str(project / "data"), "log_dir": str(project / "logs")}
    assert find_project_root(project / "notebooks") == project.resolve()


def test_an_unrelated_folder_writes_to_itself_not_to_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_overrides: None
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    paths = _paths(monkeypatch, elsewhere)
    assert paths["data_dir"] == str(elsewhere / "data") and paths["log_dir"] == str(elsewhere / "logs")
    assert not paths["log_dir"].startswith(str(REPO_ROOT))


def test_environment_variables_still_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAIHA_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("RAIHA_LOG_DIR", str(tmp_path / "l"))
    paths = _paths(monkeypatch, tmp_path)
    assert paths["data_dir"] == str(tmp_path / "d") and paths["log_dir"] == str(tmp_path / "l")


def test_the_checkout_has_the_marker() -> None:
    assert (REPO_ROOT / PROJECT_ROOT_MARKER).is_file()


@pytest.mark.slow
def test_a_wheel_carries_conf_and_writes_next_to_the_user(tmp_path: Path) -> None:
    """A regular (non-editable) install: conf/ is packed as raiha/conf, outputs go to the cwd."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "w"),
         str(REPO_ROOT)], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "w").glob("raiha-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "raiha" / "conf" / "train.yaml").is_file()
    user = tmp_path / "user"
    user.mkdir()
    probe = (
        "import raiha.utils.config as c; from raiha.utils.compose import compose, initialize_config_dir;"
        "import hydra.core.global_hydra as g\n"
        "with initialize_config_dir(config_dir=str(c.CONFIG_DIR), version_base='1.3'):\n"
        "    cfg = compose(config_name='train')\n"
        "print(c.__file__); print(c.CONFIG_DIR); print(cfg.paths.log_dir)"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAIHA_")}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", probe], cwd=user, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    module, config_dir, log_dir = done.stdout.split()
    assert module.startswith(str(site)) and config_dir == str(site / "raiha" / "conf")
    assert log_dir == str(user / "logs")

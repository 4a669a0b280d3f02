"""``python -m raiha.retrieve``: its configs compose, and a subprocess run on a tiny world writes
the lists, the ground-truth score and the run record."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from raiha.io.reference_lists import read_reference_list
from raiha.retrieval.settings import RetrievalSettings
from raiha.retrieve import retrieve
from raiha.utils.config import CONFIG_DIR, REPO_ROOT
from tests.hydra_helpers import compose_config
from tests.retrieval.conftest import single_torch_thread  # noqa: F401 (autouse: one torch thread)

TINY = [
    "synthetic.image_size=48",
    "synthetic.num_train=100",
    "synthetic.num_test=30",
    "synthetic.num_identities=20",
    "retrieval.image_size=48",
    "progress=false",
]
RETRIEVAL_CONFIGS = sorted(path.stem for path in (CONFIG_DIR / "retrieval").glob("*.yaml"))




@pytest.mark.parametrize("name", RETRIEVAL_CONFIGS)
def test_every_retrieval_config_composes_into_settings(tmp_path: Path, name: str) -> None:
    cfg = compose_config(
        "retrieve", [f"retrieval={name}"], output_dir=tmp_path / "out", data_dir=tmp_path / "data"
    )
    assert cfg.hydra_job_chdir is False
    settings = RetrievalSettings.from_dict(OmegaConf.to_container(cfg.retrieval, resolve=True))
    expected = {"eps_a_07_08": (0.7, 0.8), "eps_a_08_09": (0.8, 0.9)}.get(name)
    assert settings.eps_a_range == expected
    assert settings.eps_c == 0.7 and settings.eps_a == 0.9
    assert settings.extractor == ("dvt" if name == "dvt" else "synthetic")


def test_retrieve_in_process_on_a_tiny_world(tmp_path: Path) -> None:
    cfg = compose_config("retrieve", TINY, output_dir=tmp_path / "out", data_dir=tmp_path / "data")
    record = retrieve(cfg)
    score = json.loads(Path(record["score_file"]).read_text())
    assert set(score) == {"train", "test"} and score["test"]["all"]["queries"] == 30
    written = json.loads((tmp_path / "out" / "retrieval.json").read_text())
    assert written["lists"] == record["lists"] and written["reused"] is False
    assert retrieve(cfg)["reused"] is True


def test_iharmony4_source_needs_a_root(tmp_path: Path) -> None:
    cfg = compose_config(
        "retrieve", ["data_source=iharmony4", "root=null"], output_dir=tmp_path, data_dir=tmp_path
    )
    with pytest.raises(ValueError, match="root=/path/to/iHarmony4"):
        retrieve(cfg)


@pytest.mark.slow
def test_command_line_run_writes_lists_and_score(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RAIHA_DATA_DIR": str(tmp_path / "data"),
        "RAIHA_LOG_DIR": str(tmp_path / "logs"),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "raiha.retrieve", *TINY, "retrieval=eps_a_08_09"],
        cwd=tmp_path,  # outputs must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lists = sorted((tmp_path / "data" / "retrieval").glob("*/lists/*/IHD_*.jsonl"))
    assert [path.name for path in lists] == ["IHD_test.jsonl", "IHD_train.jsonl"]
    assert lists[0].parent.name.startswith("c0.7_a0.9_r0.8-0.9")
    assert len(read_reference_list(lists[0])) == 30
    assert (lists[0].parent / "retrieval_score.json").is_file()
    runs = list((tmp_path / "logs" / "retrieve" / "runs").glob("*/retrieval.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["root"].startswith(str(tmp_path))
    assert not (tmp_path / "outputs").exists() and REPO_ROOT.is_dir()


def test_settings_defaults_are_the_synthetic_config() -> None:
    """The datamodule's "auto" lists (no settings given) share the command's default cache
    (conf/retrieval/synthetic.yaml's image_size null is the world's 64 px)."""
    cfg = OmegaConf.load(CONFIG_DIR / "retrieval" / "synthetic.yaml")
    settings = RetrievalSettings.from_dict(OmegaConf.to_container(cfg))
    assert settings.image_size is None
    assert settings.with_image_size(64) == RetrievalSettings()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_torchrun_with_two_processes_writes_the_lists_of_one(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m raiha.retrieve``: gloo, the queries dealt out in parts
    between the two ranks, merged by rank zero into the bytes a single process writes."""
    overrides = [*TINY, "retrieval.query_part_size=16"]
    env = {**os.environ, "RAIHA_DATA_DIR": str(tmp_path / "data"), "RAIHA_LOG_DIR": str(tmp_path / "logs"),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_free_port()), "-m", "raiha.retrieve", *overrides]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "rank 1: scoring part 2 of 7" in output and "rank 0: scoring part 1 of 7" in output
    single = retrieve(compose_config("retrieve", overrides, output_dir=tmp_path / "one", data_dir=tmp_path / "one"))
    two = sorted((tmp_path / "data" / "retrieval").glob("*/lists/*/IHD_*.jsonl"))
    assert [path.name for path in two] == ["IHD_test.jsonl", "IHD_train.jsonl"]
    for path in two:
        split = path.stem.removeprefix("IHD_")
        assert path.read_bytes() == Path(single["lists"][split]).read_bytes()
    assert not list((tmp_path / "data" / "retrieval").glob("*/lists/parts-*"))
    runs = list((tmp_path / "logs" / "retrieve" / "runs").glob("*/retrieval.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["summary"]["ranks"] == 2

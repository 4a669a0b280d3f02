"""The Table III collector on fake run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raiha.collect import collect, main


def _write_run(folder: Path, experiment: str, seed: int, mse: float) -> None:
    scores = {"n": 10, "mse": mse, "psnr": 40.0 - mse / 10, "fmse": 10 * mse}
    record = {"experiment": experiment, "seed": seed, "setting": "reference",
              "subsets": {"easy": dict(scores), "hard": {**scores, "mse": 2 * mse}}, "all": scores}
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(record))


def test_table_from_fake_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "multirun"
    _write_run(sweep / "0", "raiha_synthetic", 0, 10.0)
    _write_run(sweep / "1", "raiha_synthetic", 1, 14.0)
    _write_run(sweep / "2", "ablation_sgf_synthetic", 0, 20.0)
    _write_run(sweep / "3", "my_idea", 0, 30.0)
    markdown, summary = collect([sweep], tmp_path / "table")
    assert summary["raiha_synthetic"]["runs"] == 2
    assert summary["raiha_synthetic"]["all"]["mse"] == pytest.approx(12.0)
    assert summary["raiha_synthetic"]["all"]["mse_std"] == pytest.approx(2.0)
    assert summary["raiha_synthetic"]["subsets"]["hard"]["mse"] == pytest.approx(24.0)
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "Method" not in line]
    assert [row.split("`")[1] for row in rows] == ["ablation_sgf_synthetic", "raiha_synthetic", "my_idea"]
    assert "12.00 ± 2.00" in markdown and "Raiha w/o SGF" in markdown
    assert (tmp_path / "table.md").read_text() == markdown
    assert json.loads((tmp_path / "table.json").read_text())["my_idea"]["runs"] == 1
    main([str(sweep)])
    assert "Raiha w/o SGF" in capsys.readouterr().out


def test_no_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        collect([tmp_path])

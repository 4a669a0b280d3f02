"""The layering is a contract: ``lint-imports`` (import-linter, ``pyproject.toml``) passes,
and it does fail on an upward import (so a green run means something)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    """``lint-imports`` run by this interpreter (the script's shebang may name another venv)."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]')")
    return [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def test_import_contracts_hold():
    result = subprocess.run(_lint_imports(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """A copy of the package where a low layer (io) imports a high one (training) is refused."""
    copy = tmp_path / "src"
    shutil.copytree(REPO / "src" / "raiha", copy / "raiha", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "raiha" / "io" / "upward.py").write_text("from raiha.training import lit_module  # noqa\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)}
    result = subprocess.run(
        _lint_imports(), cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode != 0
    assert "raiha.io.upward" in result.stdout

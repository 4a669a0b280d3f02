"""Shared fixtures: the read-only ``../shared`` folder of real data, skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RAIHA_SHARED_DIR", REPO_ROOT.parent / "shared"))

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip where it is absent."""
    data_dir = SHARED_DIR / "data"
    if not data_dir.is_dir():
        pytest.skip(f"shared data folder {data_dir} is absent")
    return data_dir


def shared_file(shared_data_dir: Path, relative: str) -> Path:
    """A file under ``../shared/data``; skips the test when that one file is missing."""
    path = shared_data_dir / relative
    if not path.exists():
        pytest.skip(f"shared file {path} is absent")
    return path

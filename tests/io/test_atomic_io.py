"""Atomic writes keep the usual file mode (issue 17 item 8)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from raiha.io.atomic_io import atomic_write_json, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "results.jsonl", "{}\n")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "results.jsonl") == 0o644 == _mode(tmp_path / "plain.txt")


def test_umask_is_respected(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        atomic_write_json(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "private.json") == 0o600


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o640

"""An append-only record of every cache built: which folder, by which process, how long.

Each cache builder (synthetic world, feature store, reference lists, resized cache)
appends one JSON line to ``builds.jsonl`` in the folder that holds the cache it
built, only when it computed something (reusing a cache writes nothing). Users see
when and where their caches came from; the DDP tests count the lines to prove that a
multi-process run builds each cache exactly once.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

JOURNAL_NAME = "builds.jsonl"


def _global_rank() -> int:
    """This process's rank (0 outside a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


def record_build(folder: str | Path, kind: str, seconds: float, **details: Any) -> Path:
    """Append a line for the cache ``folder`` to ``<folder.parent>/builds.jsonl``; returns the journal.

    One ``write`` of a short line to a file opened for appending: lines of concurrent
    writers never interleave.
    """
    folder = Path(folder)
    entry = {
        "kind": kind,
        "name": folder.name,
        "seconds": round(float(seconds), 3),
        "rank": _global_rank(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **details,
    }
    journal = folder.parent / JOURNAL_NAME
    journal.parent.mkdir(parents=True, exist_ok=True)
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
    return journal


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a ``builds.jsonl`` file (empty when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

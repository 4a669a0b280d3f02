"""Retrieval tests run torch single-threaded: on the 2 shared CPUs, OpenMP threads that
wait on each other make small matmuls ~100x slower (2.4 s instead of 0.03 s per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

"""Random generators keyed by a string alone (no global RNG state): what a resumed run,
any number of workers and any rank draw the same way."""

from __future__ import annotations

import hashlib

import torch


def keyed_generator(key: str) -> torch.Generator:
    """A ``torch.Generator`` seeded by the 63-bit BLAKE2b digest of ``key``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))

"""On-disk gallery features: ``.npy`` shards plus a JSON manifest, resumable.

Layout of a store folder::

    manifest.json            key, grid, dims, compression, shard size, and per finished
                             shard the kept image paths and the skipped (unreadable) ones
    compression_basis.safetensors   [k, C] projection (int8 methods only)
    content_00000.npy        fp16: [n, h*w, C] float16; int8: [n, h*w, k] int8
    content_scale_00000.npy  int8 only: [n, h*w] float32 per-cell scales
    appearance_00000.npy     fp16: [n, h*w, D] float16; int8: [n, h*w, D] uint8
    appearance_scale_00000.npy  int8 only: [n, h*w] float32

Arrays are memory-mapped when read and decoded by
:class:`raiha.retrieval.store.compression.FeatureCompressor` (rows come back float16 for fp16
stores, float32 otherwise). Shard ``s`` covers input images
``[s * shard_size, (s + 1) * shard_size)``. Every file is written atomically and the
manifest is rewritten (atomically) after each shard, so an interrupted build resumes at
the first unfinished shard. The ``key`` (extractor name, config and weights fingerprint,
HSV config, image size, hash of the image list, shard size, compression) identifies what
the store holds; a store with another key is refused unless ``rebuild=True``. Store
index ``i`` counts kept images only (skipped ones are absent). Queries must be compressed
like the gallery (:meth:`FeatureStore.compress_query`; the search functions do it).
"""

from raiha.retrieval.store.store_format import (
    MANIFEST,
    STORE_FORMAT,
    STORE_VERSION,
    FeatureStoreMismatchError,
    image_list_sha256,
    remove_store_files,
)
from raiha.retrieval.store.store_reader import FeatureStore
from raiha.retrieval.store.store_writer import FeatureStoreWriter

__all__ = [
    "MANIFEST",
    "STORE_FORMAT",
    "STORE_VERSION",
    "FeatureStore",
    "FeatureStoreMismatchError",
    "FeatureStoreWriter",
    "image_list_sha256",
    "remove_store_files",
]

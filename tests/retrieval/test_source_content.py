"""The one-image read behind the semantic grids (``FeatureStore.source_content``) gives
exactly the tensors of the generic row read, for every compression, across shards, without
aliasing or touching the shard files."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from raiha.retrieval.store.compression import _readable_tensor
from raiha.retrieval.store.feature_store import FeatureStore
from raiha.retrieval.store.store_format import shard_file
from tests.store_helpers import old_source_content, write_random_store

PATHS = [f"g/{i}.jpg" for i in range(40)]  # 3 shards of 16, 16 and 8 images
# the last: C = 24 <= k, quantised but not projected
SPECS = ["fp16", "pca_int8:8", "random_int8:12", "pca_int8:32"]


@pytest.fixture(scope="module", params=SPECS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    folder = tmp_path_factory.mktemp("store") / request.param.replace(":", "_")
    return write_random_store(folder, PATHS, request.param)


def test_source_content_equals_the_generic_read_for_every_image(store: FeatureStore) -> None:
    projects = store.compressor.basis is not None
    assert projects == (store.compression.method != "fp16" and store.compression.content_dim < 24)
    for index in range(len(store)):
        fast = store.source_content(index)
        assert fast.dtype == torch.float32 and fast.shape == (9, 24)
        assert torch.equal(fast, old_source_content(store, index)), index
    assert torch.equal(store.source_content(np.int64(17)), old_source_content(store, 17))


def test_source_content_is_a_new_tensor_and_leaves_the_shards_alone(store: FeatureStore) -> None:
    files = sorted(store.folder.glob("*.npy"))
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
    first = store.source_content(20)
    first.fill_(123.0)  # a view of the shard maps here would crash or corrupt later reads
    assert torch.equal(store.source_content(20), old_source_content(store, 20))
    assert not bool((store.source_content(20) == 123.0).all())
    reopened = FeatureStore.open(store.folder)
    assert torch.equal(reopened.source_content(20), old_source_content(store, 20))
    assert {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files} == before


@pytest.mark.parametrize("index", [-1, 40, 1000])
def test_source_content_out_of_range_names_the_store(store: FeatureStore, index: int) -> None:
    with pytest.raises(IndexError, match=f"{store.folder}.*40 images"):
        store.source_content(index)


def test_decode_float32_of_read_only_arrays_copies_them(store: FeatureStore) -> None:
    """Arrays mapped read-only (``mmap_mode="r"``) still decode, to the values of ``decode``,
    through a copy (a tensor over a read-only map is undefined behaviour in torch)."""
    kinds = [kind for kind in store.compressor.kinds if kind.startswith("content")]
    mapped = {kind: np.load(shard_file(store.folder, kind, 1), mmap_mode="r") for kind in kinds}
    arrays = {kind: array[3] for kind, array in mapped.items()}  # image 19 (shard 1, row 3)
    decoded = store.compressor.decode_float32("content", arrays)
    copies = {kind: np.array(array) for kind, array in arrays.items()}
    assert torch.equal(decoded, store.compressor.decode("content", copies).float())
    assert torch.equal(decoded, store.content(19).float())
    read_only, writable = arrays["content"], copies["content"]
    assert _readable_tensor(read_only).data_ptr() != read_only.ctypes.data  # copied
    assert _readable_tensor(writable).data_ptr() == writable.ctypes.data  # shared, no copy

"""Harmonization-oriented retrieval (paper III-B, SPEC section 3).

Pieces, one per module:

- ``grids``: the layout convention (feature grids are channels-last ``[B, h, w, C]``)
  and ``mask_to_cells`` (a cell is foreground if any of its pixels is).
- ``dvt_denoiser``: the DVT denoiser and its published-checkpoint loader.
- ``content_features`` + ``registry``: dense content extractors (``dinov2``, ``dvt``)
  behind ``create_extractor(name, **kwargs)``; new ones register with
  ``@register_extractor(name)``.
- ``hsv_histograms``: per-patch soft HSV histograms (appearance ``a``).
- ``feature_store`` + ``store_builder``: gallery features computed once into fp16
  shards, keyed by extractor/HSV config/size/image list, resumable.
- ``search``: the validity rule, its exact all-pairs scan and ranking;
  ``patch_index``: an exact candidate filter giving the same results faster.
"""

from __future__ import annotations

from raiha.retrieval.content_features import (
    DenseFeatureExtractor,
    Dinov2Extractor,
    DvtExtractor,
    MissingWeightsError,
)
from raiha.retrieval.dvt_denoiser import DvtDenoiser, load_dvt_denoiser
from raiha.retrieval.feature_store import (
    FeatureStore,
    FeatureStoreMismatchError,
    FeatureStoreWriter,
)
from raiha.retrieval.gallery import GalleryFeatures, InMemoryGallery
from raiha.retrieval.grids import mask_to_cells, to_channels_first, to_channels_last
from raiha.retrieval.hsv_histograms import HsvHistogramConfig, hsv_patch_histograms
from raiha.retrieval.patch_index import PatchIndex, PatchIndexConfig, indexed_search
from raiha.retrieval.registry import available_extractors, create_extractor, register_extractor
from raiha.retrieval.search import (
    RetrievalConfig,
    RetrievalQuery,
    RetrievedRef,
    brute_force_search,
    make_query,
    prepare_query,
)
from raiha.retrieval.store_builder import build_feature_store, extract_features, feature_store_key

__all__ = [
    "DenseFeatureExtractor",
    "Dinov2Extractor",
    "DvtDenoiser",
    "DvtExtractor",
    "FeatureStore",
    "FeatureStoreMismatchError",
    "FeatureStoreWriter",
    "GalleryFeatures",
    "HsvHistogramConfig",
    "InMemoryGallery",
    "MissingWeightsError",
    "PatchIndex",
    "PatchIndexConfig",
    "RetrievalConfig",
    "RetrievalQuery",
    "RetrievedRef",
    "available_extractors",
    "brute_force_search",
    "build_feature_store",
    "create_extractor",
    "extract_features",
    "feature_store_key",
    "hsv_patch_histograms",
    "indexed_search",
    "load_dvt_denoiser",
    "make_query",
    "mask_to_cells",
    "prepare_query",
    "register_extractor",
    "to_channels_first",
    "to_channels_last",
]

"""data.references and the retrieval settings are parsed once, typed, with one name per concept."""

from __future__ import annotations

import pytest
import torch

from raiha.data.references.semantic_grids import SemanticGridLookup
from raiha.data.references.settings import ReferenceSettings
from raiha.data.references.wiring import check_grid_width
from raiha.io.errors import RaihaDataError
from raiha.retrieval.settings import RetrievalSettings, short_hash


def test_unknown_reference_keys_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown data.references setting\(s\) \['semantics'\].*'semantic'"):
        ReferenceSettings.from_config({"enabled": True, "semantics": True}, image_size=64)
    with pytest.raises(ValueError, match=r"unknown retrieval setting\(s\) \['eps_b'\].*'eps_a'"):
        ReferenceSettings.from_config({"retrieval": {"eps_b": 0.5}}, image_size=64)


def test_retrieval_image_size_is_the_harmonizers_unless_given() -> None:
    assert ReferenceSettings.from_config({}, image_size=48).retrieval.image_size == 48
    assert ReferenceSettings.from_config({"retrieval": {"image_size": None}}, image_size=48).retrieval.image_size == 48
    given = ReferenceSettings.from_config({"retrieval": {"image_size": 448}}, image_size=256)
    assert given.retrieval.image_size == 448


def test_sgf_keeps_the_composite_stores() -> None:
    off = {"retrieval": {"store_composites": False}}
    assert ReferenceSettings.from_config(off, image_size=64).retrieval.store_composites is False
    on = ReferenceSettings.from_config({**off, "semantic": True, "enabled": True}, image_size=64)
    assert on.retrieval.store_composites is True and on.sgf and on.needs_pipeline


def test_lists_named_null_or_empty_mean_augmented_only() -> None:
    settings = ReferenceSettings.from_config({"train_list": "", "test_list": None}, image_size=64)
    assert settings.list_spec("train") is None and settings.list_spec("test") is None
    assert not settings.needs_pipeline


def test_eps_a_range_reaches_the_rule_and_old_cards_still_read() -> None:
    settings = RetrievalSettings.from_dict({"eps_a_range": [0.7, 0.8]})
    assert settings.retrieval_config().eps_a_bounds == (0.7, 0.8)
    assert RetrievalSettings.from_dict({"illumination_range": [0.7, 0.8]}) == settings  # model cards before the rename
    assert RetrievalSettings.from_dict(settings.to_dict()) == settings


def test_renaming_kept_the_cache_keys() -> None:
    """Lists cached before eps_a_range was renamed are found again (keys computed before the change)."""
    stores = {"gallery": {"a": 1}, "test": {"b": 2}}
    paper = RetrievalSettings()
    ablation = RetrievalSettings(eps_a_range=(0.7, 0.8), max_refs=4)
    assert short_hash(paper.lists_key(stores, ["train", "test"]), 8) == "7a531126"
    assert short_hash(ablation.lists_key(stores, ["train", "test"]), 8) == "aa40196d"
    assert ablation.rule_name() == "c0.7_a0.9_r0.7-0.8_m4"
    with pytest.raises(ValueError, match="image_size is unset"):
        RetrievalSettings(image_size=None).features_key("/tmp")


class _Store:
    """A feature store of one image with a 2 x 2 grid of ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        self.image_paths, self.grid_size, self._rows = ["a.jpg"], (2, 2), torch.zeros(4, channels)

    def content(self, index: int) -> torch.Tensor:
        return self._rows

    def source_content(self, index: int) -> torch.Tensor:
        """Rows in the extractor's channels (an fp16 store's are its rows)."""
        return self._rows


def test_semantic_grids_must_be_as_wide_as_feature_dim() -> None:
    settings = ReferenceSettings.from_config({"semantic": True, "retrieval": {"feature_dim": 192}}, image_size=64)
    check_grid_width(SemanticGridLookup([_Store(192)]), settings)
    with pytest.raises(RaihaDataError, match=r"grids have 768 channels but data.references.retrieval.feature_dim is 192"):
        check_grid_width(SemanticGridLookup([_Store(768)]), settings)

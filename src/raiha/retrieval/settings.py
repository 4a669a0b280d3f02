"""Settings of the retrieval job (``conf/retrieval/*.yaml``) and the cache keys derived from them.

Cache layout under ``<data_dir>/retrieval/<features_key>/`` (``features_key`` hashes the
extractor name and arguments, the HSV binning, the image size, the dataset root and, when
it is bf16, the extraction precision):

    gallery-<list hash>/                 feature store of the train real images
    gallery-<list hash>/index-<hash>.safetensors   its patch index (indexed search)
    composites-<split>-<list hash>/      feature store of a split's composites (queries)
    lists/<rule>-<hash>/IHD_<split>.jsonl   the reference lists (RAHarmony4 format)
    lists/<rule>-<hash>/summary.json        counts, and the key that makes reruns reuse them
    lists/scores-<split>-c<eps_c>-<hash>.safetensors   exact scores of a split's search at
                                         eps_c: other eps_a / ranges derive their lists from them

``<rule>`` reads like ``c0.7_a0.9_m20`` (``_r0.7-0.8`` for an ``eps_a_range``);
``<hash>`` hashes the stores' keys, the rule and the splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raiha.retrieval.features.hsv_histograms import HsvHistogramConfig
from raiha.retrieval.search.patch_index import PatchIndexConfig
from raiha.retrieval.search.rule import RetrievalConfig
from raiha.retrieval.store.extraction import (
    check_extraction_precision,
    resolve_extraction_precision,
)

log = logging.getLogger(__name__)

SEARCH_METHODS = ("prefilter", "indexed", "batched", "brute_force")
SEARCH_DEVICES = ("auto", "cpu", "cuda")
# The defaults are those of conf/retrieval/synthetic.yaml (the datamodule's "auto" lists
# and `python -m raiha.retrieve` then share one cache).
SYNTHETIC_HSV = HsvHistogramConfig(
    hue_bins=16, saturation_bins=4, value_bins=8
)  # conf/retrieval/synthetic.yaml
SYNTHETIC_INDEX = PatchIndexConfig(content_clusters=256, appearance_clusters=64)
# Names of earlier versions, still read from model cards written before the rename.
RENAMED = {"illumination_range": "eps_a_range"}


def short_hash(value: Any, length: int = 10) -> str:
    """First ``length`` hex digits of the SHA-256 of ``value`` as sorted JSON."""
    payload = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class RetrievalSettings:
    """Everything that decides the reference lists (see ``conf/retrieval/synthetic.yaml``).

    Args:
        extractor: registered content extractor (``synthetic``, ``dvt``, ``dinov2``).
        extractor_kwargs: its constructor arguments.
        feature_dim: the width of the extractor's grids (SGF's ``semantic_channels``;
            conf/attention/sgf.yaml reads it); 192 is the ``synthetic`` extractor's.
        hsv: the HSV binning of the appearance features.
        image_size: images are resized to this square size before feature extraction;
            None in config means the harmonizer's size, filled in by :meth:`with_image_size`
            (the reference settings and ``raiha.retrieve`` do it) before anything runs.
        eps_c, eps_a: the content and illumination thresholds of the rule (SPEC 3).
        eps_a_range: ``[lo, hi)`` instead of ``[eps_a, inf)`` (the ablation).
        max_refs: keep at most this many references per composite (None: all valid ones).
        search: ``prefilter`` (gallery content in memory), ``indexed`` (patch index, for
            large galleries), ``batched`` (patch index + many queries at a time on
            ``search_device``, :mod:`raiha.retrieval.search.batched`) or ``brute_force``:
            exact, the same lists (:mod:`raiha.retrieval.list_search`).
        search_device: where the ``batched`` search runs: ``auto`` (cuda when available),
            ``cpu`` or ``cuda``.
        index: the patch index settings (indexed search).
        compression: how the gallery store keeps features (``fp16``, ``pca_int8[:k]``).
        composite_compression: how the composite stores keep them (same choices; ``auto``:
            fp16 up to 256,000 bytes per image, else ``pca_int8``); queries and SGF grids
            read them back in the extractor's space through the store's basis.
        store_composites: keep the composites' features in stores (needed for SGF grids);
            False extracts them on the fly, batch by batch.
        batch_size, shard_size, num_workers, device: extraction settings.
        extraction_precision: the content extractor's forward in ``fp32``, under ``bf16``
            autocast, or ``auto``: bf16 only when ``device`` is a CUDA GPU with native bf16
            (:func:`raiha.utils.precision.bf16_support`), else fp32. Features are stored as
            before either way; the resolved choice is part of the stores' key when it is
            bf16, so bf16 and fp32 stores never stand in for each other.
        skip_unreadable: skip (and record) unreadable images instead of failing.
        subsets: restrict the split lists to these subsets (None: all).
        query_part_size: the queries of a split are scored in parts of this many, one
            file each (:mod:`raiha.retrieval.query_parts`): the unit the ranks of a job
            share and a killed job resumes from. The lists do not depend on it.
        search_low: score down to this illumination low end when searching (None: the
            rule's own). The ``indexed`` and ``batched`` searches prune by the low end, so
            their cached scores serve rules at or above it: an eps_a sweep sets the sweep's
            lowest low end here and every rule derives its lists from one search, in any
            order. The lists do not depend on it.
    """

    extractor: str = "synthetic"
    extractor_kwargs: Mapping[str, Any] = field(default_factory=dict)
    feature_dim: int | None = 192
    hsv: HsvHistogramConfig = SYNTHETIC_HSV
    image_size: int | None = 64
    eps_c: float = 0.7
    eps_a: float = 0.9
    eps_a_range: tuple[float, float] | None = None
    max_refs: int | None = 20
    search: str = "prefilter"
    search_device: str = "auto"
    index: PatchIndexConfig = SYNTHETIC_INDEX
    compression: str | Mapping[str, Any] | None = "fp16"
    composite_compression: str | Mapping[str, Any] | None = "fp16"
    store_composites: bool = True
    batch_size: int = 128
    shard_size: int = 1024
    num_workers: int = 2
    device: str = "cpu"
    extraction_precision: str = "fp32"
    skip_unreadable: bool = False
    subsets: tuple[str, ...] | None = None
    query_part_size: int = 512
    search_low: float | None = None

    def __post_init__(self) -> None:
        if self.search not in SEARCH_METHODS:
            raise ValueError(
                f"retrieval.search must be one of {SEARCH_METHODS}, got {self.search!r}"
            )
        if self.search_device.split(":")[0] not in SEARCH_DEVICES:
            raise ValueError(
                f"retrieval.search_device must be one of {SEARCH_DEVICES}, got {self.search_device!r}"
            )
        if self.query_part_size < 1:
            raise ValueError(f"retrieval.query_part_size must be >= 1, got {self.query_part_size}")
        check_extraction_precision(self.extraction_precision)
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"retrieval.image_size must be >= 8, got {self.image_size}")
        if self.eps_a_range is not None:
            object.__setattr__(self, "eps_a_range", tuple(float(v) for v in self.eps_a_range))
        if self.subsets is not None:
            object.__setattr__(self, "subsets", tuple(self.subsets))
        self.retrieval_config()  # validates eps, range and max_refs

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RetrievalSettings:
        """Settings from a (Hydra) mapping; nested ``hsv`` and ``index`` become their configs.
        Unknown keys are refused with the list of known ones; the names of :data:`RENAMED`
        (model cards of older checkpoints) are read under their new name."""
        fields = dict(values)
        for old, new in RENAMED.items():
            if old in fields and new not in fields:
                log.info("retrieval setting %r is now called %r", old, new)
                fields[new] = fields.pop(old)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown retrieval setting(s) {unknown}; known: {sorted(known)}")
        if isinstance(fields.get("hsv"), Mapping):
            fields["hsv"] = HsvHistogramConfig(**fields["hsv"])
        if isinstance(fields.get("index"), Mapping):
            fields["index"] = PatchIndexConfig(**fields["index"])
        fields["extractor_kwargs"] = dict(fields.get("extractor_kwargs") or {})
        return cls(**fields)

    def with_image_size(self, image_size: int) -> RetrievalSettings:
        """These settings with ``image_size`` filled in where it is None (the harmonizer's size)."""
        return self if self.image_size is not None else dataclasses.replace(self, image_size=int(image_size))

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (dicts, lists, numbers, strings): ``from_dict(to_dict())`` is ``self``."""
        values = dataclasses.asdict(self)
        values["extractor_kwargs"] = dict(self.extractor_kwargs)
        for name in ("eps_a_range", "subsets"):
            values[name] = list(values[name]) if values[name] is not None else None
        return values

    def retrieval_config(self) -> RetrievalConfig:
        """The rule's thresholds for :mod:`raiha.retrieval.search.rule`."""
        return RetrievalConfig(
            eps_c=self.eps_c, eps_a=self.eps_a, eps_a_range=self.eps_a_range, max_refs=self.max_refs
        )

    def search_config(self) -> RetrievalConfig:
        """The rule the search scores for: :meth:`retrieval_config` with its low end lowered to
        ``search_low`` (when lower) and no cap, so that the scores serve every rule above it."""
        rule = self.retrieval_config()
        low = rule.eps_a_bounds[0]
        if self.search_low is None or self.search_low >= low:
            return rule
        return RetrievalConfig(eps_c=self.eps_c, eps_a=float(self.search_low))

    def resolved_extraction_precision(self) -> str:
        """``fp32`` or ``bf16``: ``extraction_precision`` with ``auto`` decided for ``device``."""
        return resolve_extraction_precision(self.extraction_precision, self.device)

    def features_key(self, root: str | Path) -> str:
        """Folder name of the stores: extractor, HSV, size, the dataset root and, only when
        it is not fp32, the extraction precision (fp32 folders keep their earlier names)."""
        if self.image_size is None:
            raise ValueError("retrieval.image_size is unset: resolve it with with_image_size() first")
        key: dict[str, Any] = {
            "extractor": self.extractor,
            "extractor_kwargs": dict(self.extractor_kwargs),
            "hsv": self.hsv.to_dict(),
            "image_size": self.image_size,
            "root": str(Path(root).expanduser().resolve()),
        }
        precision = self.resolved_extraction_precision()
        if precision != "fp32":
            key["extraction_precision"] = precision
        return short_hash(key)

    def rule_name(self) -> str:
        """Readable folder name of the lists: thresholds, range and cap."""
        name = f"c{self.eps_c:g}_a{self.eps_a:g}"
        if self.eps_a_range is not None:
            name += f"_r{self.eps_a_range[0]:g}-{self.eps_a_range[1]:g}"
        return name + (f"_m{self.max_refs}" if self.max_refs else "_all")

    def lists_key(self, stores: Mapping[str, Any], splits: Sequence[str]) -> dict[str, Any]:
        """What the lists depend on: the stores' keys, the rule and the splits (indexed and
        brute-force search give the same lists, so the search method is not part of it)."""
        return {
            "stores": {name: short_hash(key, 16) for name, key in stores.items()},
            # the names of the first cache version: renaming a field must not orphan caches
            "rule": {
                "content_threshold": self.eps_c,
                "appearance_threshold": self.eps_a,
                "illumination_range": self.eps_a_range,
                "max_refs": self.max_refs,
            },
            "splits": list(splits),
        }

"""The LightningDataModule for iHarmony4-layout data: the built-in synthetic world or a real copy.

``prepare_data`` (rank zero, once) generates the synthetic world or builds the
resized cache; ``setup`` reads the split lists. iHarmony4 has no validation split:
``val_size`` composites are held out of train for checkpoint selection, grouped by
real image (every composite of one real image lands on the same side) with a seeded
draw, so the held-out set is the same in every run and on every rank.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from raiha.data.epoch_sampler import EpochSeededRandomSampler
from raiha.data.harmonization_dataset import HarmonizationDataset, default_subset_names
from raiha.data.references.settings import ReferenceSettings
from raiha.data.references.wiring import (
    ReferenceArtifacts,
    prepare_references,
    wrap_with_references,
)
from raiha.data.resize_cache import build_resized_cache, cache_key
from raiha.io.errors import RaihaDataError
from raiha.io.split_lists import HarmonizationRecord, read_split
from raiha.utils.rank_group import SINGLE_PROCESS, RankGroup

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "iharmony4")


def hold_out_validation(
    records: Sequence[HarmonizationRecord], val_size: int, seed: int
) -> tuple[list[HarmonizationRecord], list[HarmonizationRecord]]:
    """Split ``records`` into (train, val) with about ``val_size`` val composites, grouped by real image."""
    if val_size <= 0:
        return list(records), []
    real_images = sorted({record.real for record in records})
    random.Random(seed).shuffle(real_images)
    per_real: dict[str, int] = {}
    for record in records:
        per_real[record.real] = per_real.get(record.real, 0) + 1
    held_out: set[str] = set()
    count = 0
    for real in real_images:
        if count >= val_size:
            break
        held_out.add(real)
        count += per_real[real]
    train = [record for record in records if record.real not in held_out]
    val = [record for record in records if record.real in held_out]
    return train, val


def _plain(value: Any) -> Any:
    """OmegaConf containers to plain dicts and lists (checkpoints load with ``weights_only=True``)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class HarmonizationDataModule(L.LightningDataModule):
    """Train / val / test loaders of harmonization triples with their subset labels.

    Args:
        source: "synthetic" (generated once under ``data_dir``) or "iharmony4" (``root``).
        root: the iHarmony4 folder; required for source "iharmony4".
        data_dir: where generated data and caches live (``${paths.data_dir}``).
        subsets: subsets to use; None = every subset in the lists.
        image_size: square training and test size (256 in the paper).
        batch_size / eval_batch_size: loader batch sizes (eval defaults to batch_size).
        num_workers, pin_memory, persistent_workers: DataLoader settings.
        rebuild_composite: the paper protocol's ``comp * m + real * (1 - m)`` (SPEC 6).
        val_size: composites held out of train for validation (0: none).
        split_seed: seed of the held-out draw.
        shuffle_seed: the training order of epoch ``e`` is fixed by ``(shuffle_seed, e)``.
        resize_cache: build resized copies once (``prepare_data``) and read those.
        synthetic: fields of ``SyntheticWorldConfig`` for source "synthetic".
        train_split / test_split: list names (``IHD_<name>.txt``).
        limit_train / limit_test: keep only the first N records (quick runs).
        references: the retrieval-augmented setting: the fields of
            :class:`raiha.data.references.settings.ReferenceSettings` (parsed once, here,
            into ``self.reference_settings``; unknown keys are refused).
    """

    def __init__(
        self,
        *,
        source: str = "synthetic",
        root: str | None = None,
        data_dir: str = "data",
        subsets: Sequence[str] | None = None,
        image_size: int = 64,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        rebuild_composite: bool = True,
        val_size: int = 200,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        resize_cache: bool = False,
        synthetic: dict[str, Any] | None = None,
        train_split: str = "train",
        test_split: str = "test",
        limit_train: int | None = None,
        limit_test: int | None = None,
        references: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}")
        subsets = [str(name) for name in subsets] if subsets else None  # plain types: safe checkpoints
        synthetic = _plain(synthetic) if synthetic else None
        references = _plain(references) if references else None
        self.save_hyperparameters(logger=False)
        self.subsets = list(subsets) if subsets else None
        self.subset_names: list[str] | None = None
        self.train_set: HarmonizationDataset | None = None
        self.val_set: HarmonizationDataset | None = None
        self.test_set: HarmonizationDataset | None = None
        self.reference_settings = ReferenceSettings.from_config(references, image_size=image_size)
        self.reference_eval_seed = self.reference_settings.eval_seed
        self.reference_artifacts: ReferenceArtifacts | None = None

    # ------------------------------------------------------------------ where the data is
    def synthetic_config(self) -> Any:
        from raiha.world.config import SyntheticWorldConfig

        return SyntheticWorldConfig(**dict(self.hparams.synthetic or {}))

    def dataset_root(self) -> Path:
        """The folder the split lists and record paths are relative to."""
        if self.hparams.source == "synthetic":
            return Path(self.hparams.data_dir) / "synthetic" / self.synthetic_config().cache_key()
        if not self.hparams.root:
            raise RaihaDataError(
                "data.root is unset: this experiment needs iHarmony4. Pass data.root=/path/to/iHarmony4 "
                "on the command line or set the IHARMONY4_ROOT environment variable"
            )
        return Path(self.hparams.root).expanduser()

    def _records(self, split: str, limit: int | None) -> list[HarmonizationRecord]:
        records = read_split(self.dataset_root(), split, self.subsets)
        return records[:limit] if limit else records

    def _cache_root(self) -> Path:
        return Path(self.hparams.data_dir) / "resized_cache"

    # ------------------------------------------------------------------ Lightning hooks
    def prepare_data(self) -> None:
        """Rank zero, once: generate the synthetic world and build the resized cache if asked."""
        if self.hparams.source == "synthetic":
            from raiha.world.generate import ensure_world

            ensure_world(Path(self.hparams.data_dir), self.synthetic_config())
        if self.hparams.resize_cache:
            for split, limit in ((self.hparams.train_split, self.hparams.limit_train),
                                 (self.hparams.test_split, self.hparams.limit_test)):
                records = self._records(split, limit)
                build_resized_cache(self.dataset_root(), records, self.hparams.image_size, self._cache_root())
        if self.references_enabled and self._ranks().world_size == 1:
            prepare_references(self.reference_settings, self.dataset_root(), Path(self.hparams.data_dir), build=True)
        # with several ranks the references are built in setup, where every rank shares the search

    def _ranks(self) -> RankGroup:
        """The trainer's ranks (one process without a trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size == 1:
            return SINGLE_PROCESS
        return RankGroup(trainer.global_rank, trainer.world_size, trainer.strategy.barrier)

    @property
    def references_enabled(self) -> bool:
        return self.reference_settings.enabled

    def set_reference_seed(self, seed: int) -> None:
        """The seed of the evaluation's reference draws (RAHarmony4: one run per seed)."""
        self.reference_eval_seed = int(seed)
        if self.test_set is not None and hasattr(self.test_set, "seed"):
            self.test_set.seed = self.reference_eval_seed

    def setup(self, stage: str | None = None) -> None:
        root = self.dataset_root()
        all_train = self._records(self.hparams.train_split, self.hparams.limit_train)
        all_test = self._records(self.hparams.test_split, self.hparams.limit_test)
        self.subset_names = self.subsets or default_subset_names(all_train + all_test)
        train_records, val_records = hold_out_validation(all_train, self.hparams.val_size, self.hparams.split_seed)
        test_records = all_test
        settings = self.reference_settings
        if self.references_enabled:
            ranks = self._ranks()  # several: rank zero builds the stores, every rank scores its parts
            self.reference_artifacts = prepare_references(
                settings, root, Path(self.hparams.data_dir), build=ranks.world_size > 1, group=ranks
            )
            if settings.test_only_listed and self.reference_artifacts.lists.get("test"):
                # RAHarmony4: the test composites that have references (2,248 of 7,404 for iHarmony4)
                listed = self.reference_artifacts.lists["test"]
                test_records = [record for record in all_test if listed.get(record.composite)]
        kwargs = {
            "image_size": self.hparams.image_size,
            "subset_names": self.subset_names,
            "rebuild_composite": self.hparams.rebuild_composite,
        }
        train_cache = self._cache_dir_for(root, all_train)
        test_cache = self._cache_dir_for(root, all_test)
        self.train_set = HarmonizationDataset(root, train_records, cache_dir=train_cache, **kwargs)
        self.val_set = HarmonizationDataset(root, val_records, cache_dir=train_cache, **kwargs) if val_records else None
        self.test_set = HarmonizationDataset(root, test_records, cache_dir=test_cache, **kwargs)
        if self.reference_artifacts is not None:
            artifacts, seed = self.reference_artifacts, settings.train_seed
            self.train_set = wrap_with_references(self.train_set, artifacts, settings, "train", seed, training=True)
            if self.val_set is not None:
                self.val_set = wrap_with_references(self.val_set, artifacts, settings, "train", seed, training=False)
            match_masks = None
            if self.hparams.source == "synthetic":
                from raiha.world.match_masks import MatchMaskProvider

                match_masks = MatchMaskProvider(root, self.hparams.image_size)
            self.test_set = wrap_with_references(
                self.test_set, artifacts, settings, "test", self.reference_eval_seed, training=False,
                match_masks=match_masks,
            )
        log.info(
            "data %s at %s: train %d, val %d, test %d, subsets %s, references %s",
            self.hparams.source, root, len(self.train_set), len(val_records), len(self.test_set), self.subset_names,
            "on" if self.reference_artifacts is not None else "off",
        )

    def _cache_dir_for(self, root: Path, records: Sequence[HarmonizationRecord]) -> Path | None:
        if not self.hparams.resize_cache:
            return None
        return self._cache_root() / cache_key(root, records, self.hparams.image_size)

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: HarmonizationDataset, *, shuffle: bool, batch_size: int) -> DataLoader:
        workers = self.hparams.num_workers
        # shuffled order: a function of (seed, epoch), so a resumed run replays the same epochs
        sampler = EpochSeededRandomSampler(dataset, seed=self.hparams.shuffle_seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=shuffle and len(dataset) > batch_size,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.persistent_workers and workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return self._loader(self.val_set, shuffle=False, batch_size=self._eval_batch_size())

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, batch_size=self._eval_batch_size())

    def _eval_batch_size(self) -> int:
        return self.hparams.eval_batch_size or self.hparams.batch_size

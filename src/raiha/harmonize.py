"""``python -m raiha.harmonize ckpt_path=best.ckpt input=photo.jpg mask=mask.png [reference=|gallery=]``.

Harmonizes one composite or a folder of them with a checkpoint written by
``raiha.train`` (see :class:`raiha.Harmonizer`). For each composite ``<stem>`` it writes
into ``out_dir``: ``<stem>_harmonized.png`` (full resolution; with ``top_k > 1`` one
``<stem>_harmonized_k<i>.png`` per retrieved reference), ``<stem>_reference.png`` (the
reference used, at the model size), ``<stem>_attention.png`` (where the foreground
looked: background left, reference right) and one line of ``results.jsonl``.
Folder mode pairs ``input/<stem>.<ext>`` with ``mask/<stem>.<any image ext>``, else
``mask/<stem>_mask.<ext>``, else the iHarmony4 mask name (``a_1_5.jpg`` -> ``a_1.png``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from raiha.inference.gallery_search import IMAGE_SUFFIXES, open_gallery, resolve_gallery_root
from raiha.inference.harmonizer import HarmonizationResult, Harmonizer
from raiha.io.atomic_io import atomic_write_text
from raiha.io.errors import RaihaDataError
from raiha.io.naming import mask_name_for
from raiha.training.preflight import stop_unless_ready
from raiha.utils.config import CONFIG_DIR

log = logging.getLogger(__name__)


def _iharmony4_mask_name(composite: Path) -> str | None:
    """The iHarmony4 mask name of ``composite`` (``a_1_5.jpg`` -> ``a_1.png``), or None when
    the name does not follow that pattern (an ordinary ``photo.jpg``)."""
    try:
        return mask_name_for(composite.name)
    except RaihaDataError:
        return None


def _image_named(mask_dir: Path, stem: str) -> Path | None:
    """``mask_dir/<stem><ext>`` for the first image extension that exists (case-insensitive)."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (mask_dir / f"{stem}{suffix}", mask_dir / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def find_mask(mask_dir: Path, composite: Path) -> Path:
    """The mask of ``composite`` in ``mask_dir``, looked for in this order: the same stem
    with any image extension, ``<stem>_mask.<ext>``, then the iHarmony4 mask name."""
    for stem in (composite.stem, f"{composite.stem}_mask"):
        found = _image_named(mask_dir, stem)
        if found is not None and found.resolve() != composite.resolve():
            return found
    iharmony4 = _iharmony4_mask_name(composite)
    if iharmony4 is not None and (mask_dir / iharmony4).is_file():
        return mask_dir / iharmony4
    looked = [f"{composite.stem}.<{'|'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}>", f"{composite.stem}_mask.<ext>"]
    looked += [iharmony4] if iharmony4 else []
    raise RaihaDataError(f"no mask for {composite} in {mask_dir} (looked for {', '.join(looked)})")


def input_pairs(input_path: Path, mask_path: Path) -> list[tuple[Path, Path]]:
    """``(composite, mask)`` pairs: one file pair, or every image of a folder with its mask.

    When masks sit in the input folder itself, a file that is another file's mask is not
    harmonized (``photo.jpg`` + ``photo_mask.png``).
    """
    if input_path.is_dir():
        if not mask_path.is_dir():
            raise RaihaDataError(f"input {input_path} is a folder, so mask must be a folder too (got {mask_path})")
        images = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if input_path.resolve() == mask_path.resolve():
            images = [p for p in images if not p.stem.endswith("_mask")]
        if not images:
            raise RaihaDataError(f"input folder {input_path} holds no images")
        return [(composite, find_mask(mask_path, composite)) for composite in images]
    return [(input_path, mask_path)]


def save_result(result: HarmonizationResult, out_dir: Path, stem: str, rank: int | None) -> dict[str, Any]:
    """Write one result's images; returns its ``results.jsonl`` record."""
    suffix = "" if rank is None else f"_k{rank}"
    output = out_dir / f"{stem}_harmonized{suffix}.png"
    Image.fromarray(result.image).save(output)
    record: dict[str, Any] = {"input": result.name, "output": str(output), "reference": result.reference,
                              "scores": result.reference_scores, "note": result.note or None}  # fmt: skip
    if result.attention is not None:
        record["attention"] = str(out_dir / f"{stem}_attention{suffix}.png")
        Image.fromarray(result.attention).save(record["attention"])
    return record


def harmonize_files(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run the command of ``cfg``; returns the records written to ``results.jsonl``."""
    model = Harmonizer.from_checkpoint(cfg.ckpt_path, device=cfg.device)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = input_pairs(Path(cfg.input).expanduser(), Path(cfg.mask).expanduser())
    gallery, root = cfg.gallery, cfg.gallery_root
    if gallery is not None and model.extractor is not None and model.settings is not None:
        root = resolve_gallery_root(gallery, root)
        gallery = open_gallery(gallery, model.extractor, model.settings, progress=cfg.progress)  # index once
    records: list[dict[str, Any]] = []
    columns = (TextColumn("harmonize"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not cfg.progress) as progress:
        task = progress.add_task("harmonize", total=len(pairs))
        for start in range(0, len(pairs), int(cfg.batch_size)):
            chunk = pairs[start : start + int(cfg.batch_size)]
            jobs = []
            for composite, mask in chunk:
                jobs += model.plan(composite, mask, reference=cfg.reference, gallery=gallery, gallery_root=root,
                                   top_k=int(cfg.top_k), mask_mode=cfg.mask_mode)  # fmt: skip
            ranks: dict[str, int] = {}
            for result in model.run(jobs, method=cfg.method, batch_size=int(cfg.batch_size)):
                stem = Path(result.name).stem
                rank = ranks.get(stem, 0)
                ranks[stem] = rank + 1
                record = save_result(result, out_dir, stem, rank if int(cfg.top_k) > 1 else None)
                if result.reference_image is not None and rank == 0:
                    Image.fromarray(result.reference_image).save(out_dir / f"{stem}_reference.png")
                records.append(record)
            progress.advance(task, len(chunk))
    atomic_write_text(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    log.info("%d outputs written to %s", len(records), out_dir)
    return records


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="harmonize")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    stop_unless_ready(cfg, "raiha.harmonize")  # one line, no run folder, when an input is missing
    harmonize_files(cfg)


if __name__ == "__main__":
    main()

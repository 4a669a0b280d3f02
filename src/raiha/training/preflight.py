"""Check what a run needs before anything is built: data root, weight files, device, checkpoint.

``raiha.train``, ``raiha.eval`` and ``raiha.harmonize`` call :func:`stop_unless_ready` first
thing: when something is missing the command stops with ONE line that says what to pass
(no config dump, no traceback, no model or W&B run started) and removes the run folder
Hydra created for it, so a run that never started leaves nothing behind.

Device decision: an experiment that asks for a GPU (``trainer=gpu``, ``ddp``; retrieval
``device: cuda``) on a machine without one STOPS and says to pass ``trainer=cpu`` (and
``data.references.retrieval.device=cpu``). It does not fall back by itself: the real-data
recipes would run for days on a CPU, which is a choice to make knowingly.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

GPU_ACCELERATORS = ("gpu", "cuda")
WEIGHTS_EXTRACTORS = ("dinov2", "dvt")
README_ASSETS = "README 'External assets'"


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _data_problems(data: Any) -> list[str]:
    """A real-data run needs ``data.root`` holding the subsets."""
    if data is None or data.get("source") != "iharmony4":
        return []
    root = data.get("root")
    if not root:
        return ["data.root is unset: this experiment trains on iHarmony4; pass data.root=/path/to/iHarmony4 "
                f"(or export IHARMONY4_ROOT; where to get it: {README_ASSETS})"]  # fmt: skip
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        return [f"data.root={root} is not a folder: pass data.root=/path/to/iHarmony4"]
    subsets = list(data.get("subsets") or [])
    missing = [name for name in subsets if not (path / name).is_dir()]
    if subsets and len(missing) == len(subsets):
        return [f"data.root={root} holds none of {subsets}: pass the folder that holds HCOCO/ HAdobe5k/ "
                "HFlickr/ Hday2night/ (or data.subsets=[...] for the ones you have)"]  # fmt: skip
    return []


def _hub_cache_has(model_name: str) -> bool:
    """Whether the Hugging Face cache holds timm's weights for ``model_name``."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    pretrained = timm.models.get_pretrained_cfg(model_name)
    repo = getattr(pretrained, "hf_hub_id", None) if pretrained is not None else None
    if not repo:
        return False
    repo = repo.split("@")[0]
    return any(isinstance(try_to_load_from_cache(repo, name), str)
               for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))  # fmt: skip


def _weights_problems(references: Any) -> list[str]:
    """A reference experiment whose retrieval uses DINOv2 / DVT needs their weight files."""
    if not references or not references.get("enabled"):
        return []
    uses_pipeline = bool(references.get("semantic")) or "auto" in (references.get("train_list"), references.get("test_list"))
    retrieval = references.get("retrieval") or {}
    extractor = retrieval.get("extractor")
    if not uses_pipeline or extractor not in WEIGHTS_EXTRACTORS:
        return []
    kwargs = dict(retrieval.get("extractor_kwargs") or {})
    if kwargs.get("allow_random_weights") or kwargs.get("pretrained") is False:
        return []
    key = "data.references.retrieval.extractor_kwargs"
    problems = []
    model_name = str(kwargs.get("model_name") or "vit_base_patch14_reg4_dinov2.lvd142m")
    pretrained_file = kwargs.get("pretrained_file")
    if pretrained_file and not Path(str(pretrained_file)).expanduser().is_file():
        problems.append(f"{key}.pretrained_file={pretrained_file} does not exist")
    elif not pretrained_file and not _hub_cache_has(model_name):
        problems.append(f"the DINOv2 weights ({model_name}) are not in the Hugging Face cache: pass "
                        f"{key}.pretrained_file=/path/to/model.safetensors or fill the cache ({README_ASSETS})")  # fmt: skip
    if extractor == "dvt":
        from raiha.retrieval.features.content_features import resolve_denoiser_path

        path = resolve_denoiser_path(model_name, kwargs.get("denoiser_checkpoint"), kwargs.get("denoiser_dir"))
        if path is None or not path.is_file():
            where = f" ({path} is missing)" if path is not None else ""
            problems.append(f"the DVT denoiser weights{where}: pass {key}.denoiser_checkpoint=/path/to/{model_name}.pth "
                            f"or export DVT_DENOISER_DIR=<folder> ({README_ASSETS})")  # fmt: skip
    return problems


def _device_problems(trainer: Any, references: Any, gpus: int) -> list[str]:
    """GPU experiments need GPUs; the answer on a CPU machine is to ask for the CPU."""
    wanted = []
    if trainer is not None and str(trainer.get("accelerator", "auto")).lower() in GPU_ACCELERATORS:
        devices = trainer.get("devices", 1)
        count = int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1
        if gpus < count:
            wanted.append("trainer=cpu")
    retrieval = (references or {}).get("retrieval") or {}
    if references and references.get("enabled") and str(retrieval.get("device", "cpu")).startswith("cuda") and gpus == 0:
        wanted.append("data.references.retrieval.device=cpu")
    if not wanted:
        return []
    have = "no GPU" if gpus == 0 else f"{gpus} GPU(s)"
    return [f"this experiment asks for GPUs and this machine has {have}: pass {' '.join(wanted)} "
            "to run on the CPU (slow for real data; see README 'GPU or CPU')"]  # fmt: skip


def _required_problems(cfg: DictConfig) -> list[str]:
    """Mandatory values (``???``) left unset: ``raiha.eval``'s and ``raiha.harmonize``'s inputs."""
    examples = {"ckpt_path": "/path/to/file.ckpt", "input": "photo.jpg", "mask": "mask.png"}
    return [f"{key} is required: pass {key}={example}" for key, example in examples.items()
            if key in cfg.keys() and OmegaConf.is_missing(cfg, key)]  # fmt: skip


def _checkpoint_problems(cfg: DictConfig) -> list[str]:
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path in (None, "auto"):
        return []
    if ckpt_path == "last":
        last = Path(str(cfg.paths.output_dir)) / "checkpoints" / "last.ckpt"
        if last.is_file():
            return []
        return [f"ckpt_path=last but {last} does not exist: resume with hydra.run.dir=<the run's folder> ckpt_path=last"]
    if not Path(str(ckpt_path)).expanduser().is_file():
        return [f"checkpoint {ckpt_path} not found: pass ckpt_path=/path/to/file.ckpt"]
    return []


def run_problems(cfg: DictConfig, gpu_count: Callable[[], int] = _gpu_count) -> list[str]:
    """What stops ``cfg`` from running, each with what to pass; empty when it can start."""
    data = cfg.get("data")
    references = data.get("references") if data is not None else None
    problems = _required_problems(cfg) + _checkpoint_problems(cfg) + _data_problems(data) + _weights_problems(references)
    trainer = cfg.get("trainer")
    if trainer is not None or references:
        problems += _device_problems(trainer, references, gpu_count())
    device = cfg.get("device")  # raiha.harmonize
    if isinstance(device, str) and device.startswith("cuda") and gpu_count() == 0:
        problems.append(f"device={device} but this machine has no GPU: pass device=cpu")
    for key in ("input", "mask"):  # raiha.harmonize
        value = cfg.get(key) if key in cfg else None
        if isinstance(value, str) and not Path(value).expanduser().exists():
            problems.append(f"{key}={value} does not exist")
    return problems


def remove_unstarted_run_folder(output_dir: str | Path, log_dir: str | Path | None = None) -> bool:
    """Remove Hydra's run folder when it holds only what Hydra put there (``.hydra/``, the
    job log), then its empty parents up to ``log_dir`` included; returns whether it was removed."""
    folder = Path(output_dir)
    if not folder.is_dir() or any(p.name != ".hydra" and p.suffix != ".log" for p in folder.iterdir()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    stop = Path(log_dir).resolve() if log_dir is not None else None
    parent = folder.resolve().parent
    while stop is not None and (parent == stop or stop in parent.parents):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        if parent == stop:
            break
        parent = parent.parent
    return True


def stop_unless_ready(cfg: DictConfig, command: str) -> None:
    """Raise ``SystemExit`` with one line when ``cfg`` cannot run (see the module docstring)."""
    problems = run_problems(cfg)
    if not problems:
        return
    paths = cfg.get("paths")
    if paths is not None:
        remove_unstarted_run_folder(paths.output_dir, paths.get("log_dir"))
    raise SystemExit(f"{command}: cannot start: " + "; ".join(problems))

"""OmegaConf resolvers used by the configs, registered on import.

- ``${project_root:}``: the project the user works in: the nearest folder, from the
  current directory up, that holds the marker file ``.project-root`` (as
  lightning-hydra-template's rootutils does; a raiha checkout has one), else the current
  directory. ``data/`` and ``logs/`` default to folders of it (``RAIHA_DATA_DIR`` and
  ``RAIHA_LOG_DIR`` override), never to where the package is installed: a clone sharing
  another checkout's venv writes into itself, a pip-installed raiha next to the user's work.
  ``${raiha_root:}`` is the same (its old name).
- ``${wandb_offline:}``: True unless W&B can log online (an API key in the
  environment or in ``~/.netrc``, or ``WANDB_MODE=online``); without a key wandb would
  stop with a UsageError, so raiha logs offline and the run can be synced later.
- ``${sweep_group:GROUP}``: the W&B group (``GROUP/<sweep folder>`` inside a multirun).
- ``${auto_precision:DEVICE}``: "bf16-mixed" where DEVICE (cuda | cpu | auto) computes
  bf16 natively, "32-true" elsewhere (``raiha.utils.precision``; the choice is logged).
- ``${wandb_run_id:OUTPUT_DIR}``: the W&B run id of the run folder, kept in
  ``OUTPUT_DIR/wandb_run_id``: a resumed run (``ckpt_path=last``) continues the same
  W&B run, a new folder gets a new run.
"""

from __future__ import annotations

import netrc
import os
import time
import uuid
from pathlib import Path

from omegaconf import OmegaConf

from raiha.utils.precision import auto_precision

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT_MARKER = ".project-root"


def find_config_dir() -> Path:
    """raiha's ``conf/``: the source checkout's (``src/raiha`` -> ``conf``, an editable
    install) or the copy packed into the package (``raiha/conf``, a wheel: ``setup.py``)."""
    checkout = PACKAGE_DIR.parents[1] / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    return PACKAGE_DIR / "conf"


def find_project_root(start: str | Path | None = None) -> Path:
    """The nearest folder from ``start`` (default: the current directory) up that holds
    ``.project-root``, else ``start`` itself."""
    here = Path.cwd() if start is None else Path(start)
    here = here.expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_ROOT_MARKER).is_file():
            return folder
    return here


CONFIG_DIR = find_config_dir()
# The checkout the package was installed from (editable installs). Not used for outputs:
# those go under find_project_root().
REPO_ROOT = PACKAGE_DIR.parents[1]


def wandb_should_run_offline() -> bool:
    """Whether W&B must run offline here (see the module docstring)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        credentials = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        credentials = None
    return credentials is None


def sweep_group(group: str) -> str:
    """The W&B group of a run: ``group`` alone, or ``group/<sweep folder>`` inside a multirun,
    so the runs of one sweep are grouped together and two sweeps never merge."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_config = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra app (tests, notebooks)
        return group
    if hydra_config.mode != RunMode.MULTIRUN:
        return group
    return f"{group}/{Path(str(hydra_config.sweep.dir)).name}"


WANDB_RUN_ID_FILE = "wandb_run_id"


def wandb_run_id(output_dir: str) -> str:
    """The run id stored in ``output_dir`` (created there, race-free, on first use)."""
    path = Path(output_dir) / WANDB_RUN_ID_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = uuid.uuid4().hex[:12]
    try:  # O_EXCL: of two ranks resolving at once, one writes and both read its id
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        for _ in range(100):  # the writer may not have finished its one short write
            stored = path.read_text(encoding="utf-8").strip()
            if stored:
                return stored
            time.sleep(0.01)
        raise RuntimeError(f"{path} is empty; delete it to start a new W&B run") from None
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(candidate + "\n")
    return candidate


def register_resolvers() -> None:
    """Register raiha's resolvers once (safe to call again)."""
    for name in ("project_root", "raiha_root"):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, lambda: str(find_project_root()))
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_should_run_offline)
    if not OmegaConf.has_resolver("sweep_group"):
        OmegaConf.register_new_resolver("sweep_group", sweep_group)
    if not OmegaConf.has_resolver("wandb_run_id"):
        OmegaConf.register_new_resolver("wandb_run_id", wandb_run_id)
    if not OmegaConf.has_resolver("auto_precision"):
        OmegaConf.register_new_resolver("auto_precision", lambda device="auto": auto_precision(str(device)))


register_resolvers()

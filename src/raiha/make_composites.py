"""``python -m raiha.make_composites photos=DIR masks=DIR out=DIR [composites.KEY=VALUE ...]``.

Writes an iHarmony4-layout dataset of composites made from one's own photos and object
masks (see :mod:`raiha.composites` and ``conf/make_composites.yaml``), then prints the
counts and the skipped inputs. Fine-tune on it with
``python -m raiha.train +experiment=finetune data.root=OUT init_from=FILE``.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from raiha.composites import CompositeConfig, make_composites
from raiha.utils.config import CONFIG_DIR

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="make_composites")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    settings = CompositeConfig.from_mapping(OmegaConf.to_container(cfg.composites, resolve=True))
    manifest = make_composites(cfg.photos, cfg.masks, cfg.out, settings, overwrite=bool(cfg.overwrite))
    print(f"{cfg.out}: {manifest['counts']['train']} train and {manifest['counts']['test']} test composites "
          f"from {len(manifest['photos'])} photos in {manifest['seconds']} s")
    for skip in manifest["skipped"]:
        print(f"  skipped {skip['file']}: {skip['reason']}")


if __name__ == "__main__":
    main()

"""Compose raiha's Hydra configs inside tests, with every path under a temp folder."""

from __future__ import annotations

from raiha.utils.compose import compose_run_config

# A small synthetic world for tests: 48 px, 80 train / 24 test scenes (generated once per data_dir).
TINY_WORLD = [
    "data.image_size=48",
    "data.synthetic.num_train=80",
    "data.synthetic.num_test=24",
    "data.synthetic.num_identities=16",
    # saturated palettes: at this size the log-uniform world (raiha_synthetic's) leaves the
    # eps_a ablations without any inconsistently lit test reference
    "data.synthetic.palette_prior=hsv",
    "data.val_size=16",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "model.net.base_width=8",
]


compose_config = compose_run_config  # the tests' name for it

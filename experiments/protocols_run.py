"""Score one set of predictions under every protocol and resolution (experiments/protocols.md).

Usage: python experiments/protocols_run.py CKPT DATA_DIR OUT_DIR [data overrides...]

1. ``raiha.eval`` (paper protocol) saves the model's predictions twice: at full size
   (``eval.resolution=original``: the change carried to full size, affine) and at the model size.
2. ``raiha.score`` scores them under every protocol at size=model, max_side and original;
   every record also holds the composite baseline (input = output).
Prints and writes ``OUT_DIR/protocols.json``. Run it with ``OMP_NUM_THREADS=1`` on a busy
machine (small images: thread contention costs 10x).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra

from raiha.eval import evaluate
from raiha.metrics.protocols import PROTOCOLS
from raiha.score import score
from raiha.utils.compose import compose_run_config


def main() -> None:
    checkpoint, data_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    data = sys.argv[4:]
    runs = {}
    for resolution in ("original", "model"):
        cfg = compose_run_config(
            "eval", [*data, f"ckpt_path={checkpoint}", f"eval.resolution={resolution}", "eval.save_predictions=true",
                     "logger=csv", "eval.num_workers=0"],
            output_dir=out / f"eval_{resolution}", data_dir=data_dir,
        )  # fmt: skip
        written = out / f"eval_{resolution}" / "metrics.json"
        runs[resolution] = json.loads(written.read_text()) if written.is_file() else evaluate(cfg)  # reuse a run
        model_size = int(cfg.data.image_size)
    root = hydra.utils.instantiate(cfg.data).dataset_root()
    table = []
    sources = {"full-size (affine transfer)": ("original", "refuse"), "model-size, resized up": ("model", "resize")}
    for label, (made_at, on_size) in sources.items():
        for protocol in PROTOCOLS:
            for resolution in (f"size:{model_size}", f"max_side:{2 * model_size}", "original"):
                if made_at == "model" and resolution != "original":
                    continue
                name = f"{made_at}_{protocol}_{resolution.replace(':', '')}"
                cfg = compose_run_config(
                    "score", [f"predictions={out / f'eval_{made_at}' / 'predictions'}", f"data.root={root}",
                              f"protocol={protocol}", f"resolution={resolution}", f"on_size_mismatch={on_size}",
                              "num_workers=0"],
                    output_dir=out / "score" / name, data_dir=data_dir,
                )  # fmt: skip
                record = score(cfg)
                table.append({"predictions": label, "protocol": protocol, "resolution": record["resolution"],
                              "model": record["all"], "composite": record["composite_baseline"]["all"],
                              "buckets": {k: v["all"] for k, v in record["fg_ratio_buckets"]["buckets"].items()}})
    summary = {"eval": {key: {"all": run["all"], "composite": run["composite_baseline"]["all"]}
                        for key, run in runs.items()}, "scores": table}  # fmt: skip
    (out / "protocols.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

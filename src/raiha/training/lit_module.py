"""The LightningModule: trains a harmonizer with the paper's loss and evaluates it.

Validation and test score the output pasted on the composite with
``HarmonizationMetrics`` (per subset and the image-weighted "All"). The test loop
also scores the composite itself (input = output), the baseline every table prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn

from raiha.evaluation.attention_accuracy import AttentionOnMatch
from raiha.evaluation.results_io import TEST_RESULTS_FILE
from raiha.io.atomic_io import atomic_write_json
from raiha.metrics.harmonization_metric import HarmonizationMetrics
from raiha.models.compile_options import should_compile, strip_compile_prefix, unwrap_compiled
from raiha.models.harmonizer_output import HarmonizerOutput, paste_foreground
from raiha.models.layers.fusion import key_attention_map
from raiha.models.reference_input import harmonize
from raiha.models.speed_options import set_fused_kernels, to_channels_last
from raiha.training.loss import foreground_normalized_mse
from raiha.training.lr_schedule import constant_then_linear_factor


class HarmonizationModule(L.LightningModule):
    """Args:
    net: a harmonizer, ``net(composite, mask) -> HarmonizerOutput``.
    lr: Adam learning rate (paper: 0.004; the authors' runs suggest 4e-4).
    betas: Adam betas.
    weight_decay: Adam weight decay.
    lr_constant_epochs: epochs at the full rate before the linear decay.
    min_foreground_area: the loss's minimum foreground area (pixels).
    protocol: scoring protocol, one of raiha.metrics.protocols.PROTOCOLS (paper, is2am, pctnet, harmonizer).
    quantize: "floor" (the authors' uint8 cast) or "round", paper protocol only.
    subset_names: subset labels; taken from the datamodule when None.
    reference_probability: chance that a training step uses the reference setting
        (the paper draws each setting 50/50); needs batches with a ``reference``.
    evaluate_with_reference: val/test use the batch's reference (RAHarmony4 protocol).
    mixture_seed: seed of the per-step setting draw (a function of the step alone,
        so a resumed run continues the same sequence).
    fused_kernels: fused RAIN and training attention (same results, faster).
    channels_last: channels-last memory format for the network.
    compile: ``torch.compile`` the network in place (``nn.Module.compile``: the state
        dict keeps its plain key names): True, False or "auto" (when the trainer fits on
        a CUDA device; off on the CPU, where inductor's C++ compile costs more than it
        gains on short runs, and for evaluation alone).
    compile_mode: ``torch.compile``'s mode ("default", "reduce-overhead", "max-autotune", ...).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        lr_constant_epochs: int = 0,
        min_foreground_area: float = 100.0,
        protocol: str = "paper",
        quantize: str = "floor",
        subset_names: list[str] | None = None,
        reference_probability: float = 0.0,
        evaluate_with_reference: bool = False,
        mixture_seed: int = 0,
        fused_kernels: bool = True,
        channels_last: bool = False,
        compile: bool | str = False,
        compile_mode: str = "default",
    ) -> None:
        super().__init__()
        net, compile = unwrap_compiled(net, compile)  # a torch.compile'd net: its module, compiled in place
        betas = (float(betas[0]), float(betas[1]))  # plain floats: checkpoints load with weights_only
        subset_names = [str(name) for name in subset_names] if subset_names else None
        self.save_hyperparameters(ignore=["net"], logger=False)
        set_fused_kernels(net, fused_kernels)
        self.net = to_channels_last(net) if channels_last else net
        self.subset_names = list(subset_names) if subset_names else None
        self.val_metrics: HarmonizationMetrics | None = None
        self.test_metrics: HarmonizationMetrics | None = None
        self.test_baseline_metrics: HarmonizationMetrics | None = None
        self.test_results: dict[str, dict[str, Any]] = {}
        self._net_compiled = False
        if self.subset_names:
            self._build_metrics(self.subset_names)

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        names = getattr(datamodule, "subset_names", None)
        if names and list(names) != self.subset_names:
            self.subset_names = list(names)
            self._build_metrics(self.subset_names)
        if self.subset_names is None:
            raise RuntimeError("HarmonizationModule needs subset_names (from the datamodule or the config)")

    def configure_model(self) -> None:
        """Compile the network in place once the trainer's device is known (``model.compile``)."""
        device_type = self.trainer.strategy.root_device.type if self._trainer else "cpu"
        fitting = self._trainer is None or self.trainer.state.fn == TrainerFn.FITTING
        if self._net_compiled or not should_compile(self.hparams.get("compile", False), device_type, fitting=fitting):
            return
        self.net.compile(mode=self.hparams.get("compile_mode") or "default")
        self._net_compiled = True

    def on_train_epoch_start(self) -> None:
        """New reference draws every epoch (the dataset's draws depend on seed, epoch, index)."""
        train_set = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(self.current_epoch)

    def _build_metrics(self, names: list[str]) -> None:
        kwargs = {"subset_names": names, "protocol": self.hparams.protocol, "quantize": self.hparams.quantize}
        self.val_metrics = HarmonizationMetrics(**kwargs)
        self.test_metrics = HarmonizationMetrics(**kwargs)
        self.test_baseline_metrics = HarmonizationMetrics(**kwargs)
        self.test_attention = AttentionOnMatch()

    # ------------------------------------------------------------------ model card
    model_card: dict[str, Any] | None = None  # set by raiha.train (raiha.models.model_card)
    # the scoring protocol's background handling at test time, set by raiha.eval:
    # "real_after" scores the output pasted on the real image instead of the composite
    test_background: str = "composite"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # plain key names whatever wrapped the network (a hand-made torch.compile adds _orig_mod.)
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = strip_compile_prefix(checkpoint["state_dict"])
        if self.model_card is not None:
            from raiha.models.model_card import MODEL_CARD_KEY

            checkpoint[MODEL_CARD_KEY] = self.model_card

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Accept checkpoints of hand-compiled networks (``net._orig_mod.*`` keys)."""
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = strip_compile_prefix(checkpoint["state_dict"])

    # ------------------------------------------------------------------ steps
    def forward(self, batch: dict[str, Any], *, use_reference: bool) -> HarmonizerOutput:
        """Harmonize a batch with or without its reference (semantic grids when present)."""
        if use_reference and "reference" not in batch:
            raise ValueError("the reference setting needs batches with a 'reference' (enable data.references)")
        return harmonize(
            self.net,
            batch["composite"],
            batch["mask"],
            reference=batch["reference"] if use_reference else None,
            semantic=batch.get("semantic"),
            reference_semantic=batch.get("reference_semantic") if use_reference else None,
            reference_valid=batch.get("reference_valid") if use_reference else None,
        )

    def _predict_pasted(self, batch: dict[str, Any], use_reference: bool) -> tuple[Tensor, HarmonizerOutput]:
        output = self(batch, use_reference=use_reference)
        return paste_foreground(output.image, batch["composite"], batch["mask"]), output

    def draw_reference_setting(self, step: int) -> bool:
        """Whether training step ``step`` uses the reference setting (depends on the step only)."""
        probability = self.hparams.reference_probability
        if probability <= 0:
            return False
        if probability >= 1:
            return True
        generator = torch.Generator().manual_seed(self.hparams.mixture_seed * 1_000_003 + step)
        return bool(torch.rand((), generator=generator) < probability)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        use_reference = self.draw_reference_setting(self.global_step)
        pasted, _ = self._predict_pasted(batch, use_reference)  # [B, 3, H, W]
        self.log("train/reference_setting", float(use_reference), batch_size=pasted.shape[0])
        loss = foreground_normalized_mse(pasted, batch["real"], batch["mask"], self.hparams.min_foreground_area)
        self.log("train/loss", loss, prog_bar=True, batch_size=pasted.shape[0])
        return loss

    def _evaluation_uses_reference(self, batch: dict[str, Any]) -> bool:
        return bool(self.hparams.evaluate_with_reference and "reference" in batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        pasted, output = self._predict_pasted(batch, self._evaluation_uses_reference(batch))
        loss = foreground_normalized_mse(pasted, batch["real"], batch["mask"], self.hparams.min_foreground_area)
        self.log("val/loss", loss, sync_dist=True, batch_size=pasted.shape[0])
        self.val_metrics.update(pasted, batch["real"], batch["mask"], batch["subset_idx"], batch["index"])
        return self._step_outputs(batch, pasted, output, with_map=batch_idx == 0)

    def on_validation_epoch_end(self) -> None:
        results = self.val_metrics.compute()
        self.val_metrics.reset()
        self._log_results("val", results)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        use_reference = self._evaluation_uses_reference(batch)
        pasted, output = self._predict_pasted(batch, use_reference)
        attention = output.attention
        if use_reference and "reference_match" in batch and attention is not None and attention.weights is not None:
            self.test_attention.update(attention.weights, attention.foreground_cells, batch["reference_match"])
        args = (batch["real"], batch["mask"], batch["subset_idx"], batch["index"])
        scored, baseline = pasted, batch["composite"]
        if self.test_background == "real_after":  # DiffHarmony's --use_gt_bg: the real background, pasted after
            scored = paste_foreground(output.image, batch["real"], batch["mask"])
            baseline = paste_foreground(batch["composite"], batch["real"], batch["mask"])
        self.test_metrics.update(scored, *args)
        self.test_baseline_metrics.update(baseline, *args)
        return self._step_outputs(batch, pasted, output, with_map=batch_idx == 0)

    def _step_outputs(
        self, batch: dict[str, Any], pasted: Tensor, output: HarmonizerOutput, *, with_map: bool = True
    ) -> dict[str, Any]:
        """What the image callbacks draw: the output and where the fusion looked.

        ``attention_map`` is ``[B, 1, H, W']`` in [0, 1]: the attention each key cell
        receives from the foreground (paper Fig. 3), over the composite's background and,
        in the reference setting, over the reference on the right (``W' = 2W``); only
        ``with_map`` (the first batch, the one the image callback draws).
        """
        weights = _attention_weights(output)
        attention_map = None
        if with_map and weights is not None and output.attention is not None:
            height = batch["composite"].shape[-2]
            grid_h, grid_w = output.attention.foreground_cells.shape[-2:]
            attention_map = key_attention_map(output.attention, (height, height * grid_w // grid_h))
        return {"prediction": pasted, "attention": weights, "attention_map": attention_map}

    def on_test_epoch_end(self) -> None:
        self.test_results = {
            "composite": self.test_baseline_metrics.compute(),
            "model": self.test_metrics.compute(),
            # one row per image (sample_index, subset, fg_ratio, scores): per_image.csv
            "per_image": {
                "model": self.test_metrics.per_image_rows(),
                "composite": self.test_baseline_metrics.per_image_rows(),
            },
        }
        if int(self.test_attention.count) > 0:
            self.test_results["model"] = {**self.test_results["model"], "attention": self.test_attention.compute()}
            self.log("test/attention_on_match", self.test_results["model"]["attention"]["attention_on_match"])
        self.test_attention.reset()
        self.test_metrics.reset()
        self.test_baseline_metrics.reset()
        self._log_results("test", self.test_results["model"])
        self._log_results("test_composite", self.test_results["composite"])
        if self.trainer.is_global_zero:
            # strategies that test in spawned processes (ddp_spawn) do not send attributes
            # back to the launching process: it reads the synced results from this file
            atomic_write_json(Path(self.trainer.default_root_dir) / TEST_RESULTS_FILE, self.test_results)

    def _log_results(self, prefix: str, results: dict[str, Any]) -> None:
        """Log "All" and every subset as scalars, e.g. ``val/mse`` and ``val/hard/mse``."""
        scalars = {f"{prefix}/{key}": float(results["all"][key]) for key in ("mse", "psnr", "fmse")}
        for name, scores in results["subsets"].items():
            scalars.update({f"{prefix}/{name}/{key}": float(scores[key]) for key in ("mse", "psnr", "fmse")})
        # Values are already reduced over ranks by the metric: no sync needed.
        self.log_dict(scalars, sync_dist=False, rank_zero_only=True)

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas), weight_decay=self.hparams.weight_decay
        )
        total_epochs = max(1, int(self.trainer.max_epochs or 1))
        constant_epochs = min(self.hparams.lr_constant_epochs, total_epochs)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda epoch: constant_then_linear_factor(epoch, constant_epochs=constant_epochs, total_epochs=total_epochs),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def _attention_weights(output: HarmonizerOutput) -> Tensor | None:
    return None if output.attention is None else output.attention.weights

"""``model.compile``: a compiled network trains like the eager one, and every checkpoint keeps
plain key names (no ``_orig_mod.``); checkpoints of hand-compiled networks still load."""

from __future__ import annotations

import copy
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from raiha import Harmonizer
from raiha.models.compile_options import should_compile, strip_compile_prefix, unwrap_compiled
from raiha.models.harmonizer_output import paste_foreground
from raiha.models.model_card import MODEL_CARD_KEY, build_model_card
from raiha.models.registry import create_harmonizer
from raiha.training.lit_module import HarmonizationModule
from raiha.training.loss import foreground_normalized_mse
from tests.hydra_helpers import compose_config

SIZE = 32


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_harmonizer("unet", base_width=4, depth=2, attention="plain", attention_stride=4)


def _batch(batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch_size, 1, SIZE, SIZE)
    mask[..., 8:20, 10:24] = 1
    return {
        "composite": torch.rand(batch_size, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "real": torch.rand(batch_size, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "mask": mask,
    }


def _loss(module: HarmonizationModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    output = module(batch, use_reference=False)
    pasted = paste_foreground(output.image, batch["composite"], batch["mask"])
    return foreground_normalized_mse(pasted, batch["real"], batch["mask"])


def test_compile_choice_auto_means_cuda_only() -> None:
    assert should_compile("auto", "cuda") and not should_compile("auto", "cpu")
    assert not should_compile("auto", "cuda", fitting=False) and should_compile(True, "cuda", fitting=False)
    assert should_compile(True, "cpu") and should_compile("true", "cpu")
    assert not should_compile(False, "cuda") and not should_compile("False", "cuda")
    with pytest.raises(ValueError, match="true, false or auto"):
        should_compile("sometimes", "cuda")
    with pytest.raises(ValueError, match="true, false or auto"):
        HarmonizationModule(_net(), compile="yes please")


def test_strip_compile_prefix_known_answer() -> None:
    state = {"net._orig_mod.head.weight": 1, "net.tail.bias": 2, "_orig_mod.x": 3}
    assert strip_compile_prefix(state) == {"net.head.weight": 1, "net.tail.bias": 2, "x": 3}
    with pytest.raises(ValueError, match="compiled copy"):
        strip_compile_prefix({"net.a": 1, "net._orig_mod.a": 2})


def test_a_hand_compiled_net_is_unwrapped_and_keeps_plain_keys() -> None:
    net = _net()
    compiled = torch.compile(net)  # lazy: nothing is compiled until it is called
    assert any("_orig_mod." in key for key in compiled.state_dict())
    assert unwrap_compiled(compiled, False) == (net, True)
    module = HarmonizationModule(compiled, compile=False, subset_names=["easy"])
    assert module.net is net and module.hparams.compile is True
    eager = HarmonizationModule(_net(), subset_names=["easy"])
    assert list(module.state_dict()) == list(eager.state_dict())


def test_checkpoints_of_hand_compiled_nets_load_into_the_module(tmp_path: Path) -> None:
    source = HarmonizationModule(_net(), subset_names=["easy"])
    prefixed = {
        key.replace("net.", "net._orig_mod.", 1): value
        for key, value in source.state_dict().items()
    }
    checkpoint = {"state_dict": dict(prefixed)}
    target = HarmonizationModule(_net(), subset_names=["easy"])
    target.on_load_checkpoint(checkpoint)
    target.load_state_dict(checkpoint["state_dict"])
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    saved = {"state_dict": dict(prefixed)}
    target.on_save_checkpoint(saved)
    assert list(saved["state_dict"]) == list(source.state_dict())


def test_harmonizer_loads_plain_and_compiled_key_names(tmp_path: Path) -> None:
    overrides = ["model.net.base_width=4", "data.image_size=32"]
    cfg = compose_config("train", overrides, output_dir=tmp_path / "run", data_dir=tmp_path)
    net = hydra.utils.instantiate(cfg.model.net)
    card = build_model_card(cfg)
    plain = {f"net.{key}": value for key, value in net.state_dict().items()}
    compiled = {f"net._orig_mod.{key}": value for key, value in net.state_dict().items()}
    outputs = []
    for name, state in (("plain", plain), ("compiled", compiled)):
        path = tmp_path / f"{name}.ckpt"
        torch.save({"state_dict": state, MODEL_CARD_KEY: card}, path)
        loaded = Harmonizer.from_checkpoint(path)
        outputs.append([value.clone() for value in loaded.net.state_dict().values()])
    assert all(torch.equal(a, b) for a, b in zip(*outputs))


class _Batches(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in _batch(1, seed=index).items()}


def _fit(
    module: HarmonizationModule, folder: Path, max_steps: int, ckpt_path: str | None = None
) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=max_steps, limit_val_batches=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
        enable_checkpointing=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(
        module, DataLoader(_Batches(), batch_size=2), ckpt_path=ckpt_path, weights_only=True
    )
    return trainer


@pytest.mark.slow
def test_compiled_and_eager_give_the_same_loss_gradients_and_checkpoint_keys(
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    eager = HarmonizationModule(_net(), subset_names=["easy"], compile=False)
    compiled = HarmonizationModule(copy.deepcopy(eager.net), subset_names=["easy"], compile=True)
    compiled.configure_model()  # no trainer: compiles (compile=True) on the CPU
    assert compiled._net_compiled
    batch = _batch()
    eager_loss, compiled_loss = _loss(eager, batch), _loss(compiled, batch)
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-4, atol=1e-6)
    eager_loss.backward()
    compiled_loss.backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)

    # through Lightning: train compiled, save, resume; the keys are the eager module's
    trainer = _fit(compiled, tmp_path, max_steps=2)
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    payload = torch.load(path, weights_only=True)
    assert list(payload["state_dict"]) == list(eager.state_dict())
    assert not any("_orig_mod" in key for key in payload["state_dict"])
    # (the resumed run is eager: the keys are the same either way, and a second compile costs a minute)
    resumed = HarmonizationModule(_net(), subset_names=["easy"], compile=False)
    resumed_trainer = _fit(resumed, tmp_path, max_steps=3, ckpt_path=str(path))
    assert resumed_trainer.global_step == 3
    # an eager module loads the compiled run's weights (and vice versa: same keys)
    plain = HarmonizationModule(_net(), subset_names=["easy"], compile=False)
    plain.load_state_dict(payload["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(
            _loss(plain, batch), _loss(compiled, batch), rtol=1e-4, atol=1e-6
        )

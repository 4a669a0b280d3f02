"""``raiha.Harmonizer`` and ``python -m raiha.harmonize``: checkpoints with a model card, every
input format, bad inputs, full resolution with a bit-identical background, and retrieval
from a gallery folder end to end."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from PIL import Image

from raiha import Harmonizer
from raiha.harmonize import harmonize_files
from raiha.inference.full_resolution import fit_colour_transform, transfer_to_full_resolution
from raiha.io.build_journal import JOURNAL_NAME, read_journal
from raiha.io.errors import RaihaDataError
from raiha.io.split_lists import read_split
from raiha.models.checkpoint_io import CheckpointError
from raiha.models.model_card import MODEL_CARD_KEY, build_model_card
from raiha.world import SyntheticWorldConfig, generate_world
from tests.hydra_helpers import compose_config

SIZE = 64


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _write_checkpoint(path: Path, experiment: str, tmp: Path) -> Path:
    cfg = compose_config(
        "train", [f"+experiment={experiment}", "model.net.base_width=8"], output_dir=tmp / "run", data_dir=tmp
    )
    net = hydra.utils.instantiate(cfg.model.net)
    state = {f"net.{key}": value for key, value in net.state_dict().items()}
    torch.save({"state_dict": state, MODEL_CARD_KEY: build_model_card(cfg)}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raiha_synthetic (SGF over the weight-free grid) checkpoint with random weights."""
    folder = tmp_path_factory.mktemp("ckpt")
    return _write_checkpoint(folder / "raiha.ckpt", "raiha_synthetic", folder)


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> Harmonizer:
    return Harmonizer.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = SyntheticWorldConfig(num_train=40, num_test=6, num_identities=10)
    return generate_world(tmp_path_factory.mktemp("world") / "w", cfg)


def _photo(height: int = 90, width: int = 130) -> np.ndarray:
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _soft_mask(height: int = 90, width: int = 130) -> np.ndarray:
    """uint8 [H, W]: a box with a 4-pixel soft edge."""
    rows, cols = np.mgrid[0:height, 0:width]
    distance = np.minimum.reduce([rows - 20, 70 - rows, cols - 30, 100 - cols]).astype(np.float32)
    return (np.clip(distance / 4.0, 0.0, 1.0) * 255).astype(np.uint8)


def test_card_is_read_and_mismatches_are_named(checkpoint: Path, model: Harmonizer, tmp_path: Path) -> None:
    assert model.image_size == SIZE and model.card["semantic"] and model.card["extractor"] == "synthetic"
    assert model.extractor is not None and model.extractor.feature_dim == 192
    with pytest.raises(ValueError, match="trained at 64 px, not 128"):
        Harmonizer.from_checkpoint(checkpoint, image_size=128)
    with pytest.raises(ValueError, match="extractor 'synthetic', not 'dvt'"):
        Harmonizer.from_checkpoint(checkpoint, extractor="dvt")
    payload = torch.load(checkpoint, weights_only=True)
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": payload["state_dict"]}, bare)
    with pytest.raises(ValueError, match="no raiha model card"):
        Harmonizer.from_checkpoint(bare)
    payload[MODEL_CARD_KEY]["net"]["_target_"] = "os.system"
    hostile = tmp_path / "hostile.ckpt"
    torch.save(payload, hostile)
    with pytest.raises(ValueError, match="is not raiha.models.registry.create_harmonizer"):
        Harmonizer.from_checkpoint(hostile)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        Harmonizer.from_checkpoint(truncated)
    wrong = torch.load(checkpoint, weights_only=True)
    wrong["state_dict"] = {k: v for k, v in wrong["state_dict"].items() if "decoder" not in k}
    partial = tmp_path / "partial.ckpt"
    torch.save(wrong, partial)
    with pytest.raises(CheckpointError, match="missing keys"):
        Harmonizer.from_checkpoint(partial)


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


@pytest.mark.parametrize("composite_format", ["jpeg", "png_rgba", "png_palette", "png_16bit", "grey"])
@pytest.mark.parametrize("mask_format", ["grey_soft", "rgb"])
def test_every_format_gives_full_resolution_with_an_untouched_background(
    model: Harmonizer, tmp_path: Path, composite_format: str, mask_format: str
) -> None:
    photo = _photo()
    if composite_format == "jpeg":
        path = _save(Image.fromarray(photo), tmp_path / "c.jpg")
    elif composite_format == "png_rgba":
        path = _save(Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])), tmp_path / "c.png")
    elif composite_format == "png_palette":
        path = _save(Image.fromarray(photo).quantize(64), tmp_path / "c.png")
    elif composite_format == "png_16bit":
        path = _save(Image.fromarray(photo[:, :, 0].astype(np.uint16) * 257), tmp_path / "c.png")
    else:
        path = _save(Image.fromarray(photo[:, :, 1]), tmp_path / "c.png")
    soft = _soft_mask()
    mask = Image.fromarray(soft) if mask_format == "grey_soft" else Image.fromarray(np.dstack([soft] * 3))
    mask_path = _save(mask, tmp_path / "m.png")
    result = model.harmonize(path, mask_path)
    with Image.open(path) as decoded:
        original = np.asarray(decoded.convert("RGB")) if composite_format != "png_16bit" else None
    assert result.image.shape == (90, 130, 3) and result.image.dtype == np.uint8
    outside = soft == 0
    if original is not None:
        assert np.array_equal(result.image[outside], original[outside])  # bit-identical background
    assert result.reference is None and result.output_small.shape == (SIZE, SIZE, 3)
    assert result.attention is not None and result.attention.shape == (SIZE, SIZE, 3)


def test_bad_inputs_are_named(model: Harmonizer, tmp_path: Path) -> None:
    photo = _photo()
    with pytest.raises(RaihaDataError, match="must have the same size"):
        model.harmonize(photo, _soft_mask(80, 130))
    with pytest.raises(RaihaDataError, match="is empty"):
        model.harmonize(photo, np.zeros((90, 130), np.uint8))
    with pytest.raises(RaihaDataError, match="covers the whole image"):
        model.harmonize(photo, np.full((90, 130), 255, np.uint8))
    speck = np.zeros((900, 1300), np.uint8)
    speck[400, 600] = 255
    with pytest.raises(RaihaDataError, match="touches nothing"):
        model.harmonize(np.zeros((900, 1300, 3), np.uint8), speck)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(RaihaDataError, match="broken.jpg"):
        model.harmonize(broken, _soft_mask())
    with pytest.raises(ValueError, match="either reference= or gallery="):
        model.harmonize(photo, _soft_mask(), reference=photo, gallery=tmp_path)


def test_colour_transform_known_answer_and_full_resolution_transfer() -> None:
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(500, 3, generator=generator) * 0.8
    target = source * torch.tensor([0.5, 1.0, 1.2]) + torch.tensor([0.1, 0.0, -0.05])
    transform = fit_colour_transform(source, target, ridge=1e-8)
    expected = torch.tensor([[0.5, 0, 0], [0, 1.0, 0], [0, 0, 1.2], [0.1, 0.0, -0.05]])
    assert torch.allclose(transform, expected, atol=1e-4)
    # a network output that applied this transform at 32 px is carried to 200 x 300 exactly
    blocks = np.random.default_rng(1).uniform(0.1, 0.7, size=(10, 15, 3))  # 20 px blocks: detail survives 32 px
    photo = (np.kron(blocks, np.ones((20, 20, 1))) * 255).round().astype(np.uint8)  # [200, 300, 3]
    alpha = np.zeros((200, 300), np.float32)
    alpha[50:150, 100:250] = 1.0
    small = torch.from_numpy(np.array(Image.fromarray(photo).resize((32, 32), Image.Resampling.BILINEAR)))
    small = small.permute(2, 0, 1).float() / 127.5 - 1  # [3, 32, 32]
    mask_small = torch.zeros(1, 32, 32)
    mask_small[:, 8:24, 16:30] = 1
    changed = (((small + 1) / 2).permute(1, 2, 0) * torch.tensor([0.5, 1.0, 1.2]) + torch.tensor([0.1, 0, -0.05]))
    output_small = changed.permute(2, 0, 1) * 2 - 1
    full = transfer_to_full_resolution(photo, alpha, small, output_small, mask_small)
    inside = alpha > 0
    want = np.clip(photo[inside] / 255.0 * [0.5, 1.0, 1.2] + [0.1, 0.0, -0.05], 0, 1) * 255
    assert np.abs(full[inside].astype(float) - want).max() <= 1.0
    assert np.array_equal(full[~inside], photo[~inside])


def test_gallery_folder_end_to_end_and_fallback(model: Harmonizer, world: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"  # the train real images: the world's retrieval gallery
    gallery.mkdir()
    for record in read_split(world, "train"):
        (gallery / Path(record.real).name).write_bytes((world / record.real).read_bytes())
    retrieved = 0
    for record in read_split(world, "test"):
        results = model.harmonize_top_k(
            world / record.composite, world / record.mask, gallery=gallery, top_k=3, cache_dir=tmp_path / "store"
        )
        assert 1 <= len(results) <= 3
        for result in results:
            assert result.image.shape == (SIZE, SIZE, 3)
            if result.reference is None:
                assert "non-reference" in result.note and len(results) == 1
                continue
            retrieved += 1  # a gallery photo with the scores that made it valid
            assert Path(result.reference).parent == gallery
            content, illumination = result.reference_scores
            assert content >= 0.7 and illumination >= 0.9
            assert result.attention.shape == (SIZE, 2 * SIZE, 3)
        scores = [result.reference_scores for result in results if result.reference_scores]
        assert scores == sorted(scores, reverse=True)  # best first
    assert retrieved >= 3  # the relevant references exist in this world: most composites find one
    assert len([path for path in (tmp_path / "store").iterdir() if path.is_dir()]) == 1  # indexed once
    assert [entry["kind"] for entry in read_journal(tmp_path / "store" / JOURNAL_NAME)] == ["feature_store"]
    noise = tmp_path / "noise"
    noise.mkdir()
    for index in range(3):
        Image.fromarray(_photo(64, 64) // (index + 1)).save(noise / f"n{index}.png")
    test_composite, mask = world / record.composite, world / record.mask
    fallback = model.harmonize(test_composite, mask, gallery=noise)
    assert fallback.reference is None and "no valid reference" in fallback.note
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RaihaDataError, match="holds no images"):
        model.harmonize(test_composite, mask, gallery=empty)


def test_command_harmonizes_a_folder_with_a_reference(checkpoint: Path, world: Path, tmp_path: Path) -> None:
    composites, masks = tmp_path / "in", tmp_path / "masks"
    composites.mkdir()
    masks.mkdir()
    for path in sorted((world / "easy" / "composite_images").iterdir())[:3]:
        (composites / path.name).write_bytes(path.read_bytes())
        mask_name = path.stem.rsplit("_", 1)[0] + ".png"
        (masks / mask_name).write_bytes((world / "easy" / "masks" / mask_name).read_bytes())
    reference = next((world / "easy" / "real_images").iterdir())
    cfg = compose_config(
        "harmonize",
        [f"ckpt_path={checkpoint}", f"input={composites}", f"mask={masks}", f"reference={reference}",
         "batch_size=2", "progress=false"],
        output_dir=tmp_path / "out", data_dir=tmp_path,
    )  # fmt: skip
    records = harmonize_files(cfg)
    assert len(records) == 3
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(records))
    for record in records:
        assert Path(record["output"]).is_file() and record["reference"] == str(reference)
        stem = Path(record["input"]).stem
        assert (tmp_path / "out" / f"{stem}_reference.png").is_file()
        assert Path(record["attention"]).is_file()


def test_command_harmonizes_a_folder_of_ordinary_names(checkpoint: Path, tmp_path: Path) -> None:
    """Issue 17 item 2: photo.jpg + masks/photo.png works; masks are matched as the README says."""
    from raiha.harmonize import find_mask, input_pairs

    photos, masks = tmp_path / "photos", tmp_path / "photos" / "masks"
    masks.mkdir(parents=True)
    box = np.zeros((90, 130), np.uint8)
    box[20:70, 30:100] = 255
    Image.fromarray(_photo()).save(photos / "photo.jpg")
    Image.fromarray(box).save(masks / "photo.png")  # same stem
    Image.fromarray(_photo()).save(photos / "holiday.PNG")
    Image.fromarray(box).save(masks / "holiday_mask.jpg", quality=95)  # <stem>_mask.<any ext>
    Image.fromarray(_photo()).save(photos / "a3630_1_5.jpg")
    Image.fromarray(box).save(masks / "a3630_1.png")  # the iHarmony4 name, last
    pairs = input_pairs(photos, masks)
    assert [(c.name, m.name) for c, m in pairs] == [
        ("a3630_1_5.jpg", "a3630_1.png"), ("holiday.PNG", "holiday_mask.jpg"), ("photo.jpg", "photo.png"),
    ]  # fmt: skip
    Image.fromarray(box).save(masks / "a3630_1_5.png")  # the same stem wins over the iHarmony4 name
    assert find_mask(masks, photos / "a3630_1_5.jpg").name == "a3630_1_5.png"
    with pytest.raises(RaihaDataError, match=r"no mask for .*nomask\.jpg .*nomask_mask"):
        find_mask(masks, photos / "nomask.jpg")
    side_by_side = tmp_path / "flat"  # masks next to the photos: the masks are not harmonized
    side_by_side.mkdir()
    Image.fromarray(_photo()).save(side_by_side / "photo.jpg")
    Image.fromarray(box).save(side_by_side / "photo_mask.png")
    assert [(c.name, m.name) for c, m in input_pairs(side_by_side, side_by_side)] == [("photo.jpg", "photo_mask.png")]
    cfg = compose_config(
        "harmonize", [f"ckpt_path={checkpoint}", f"input={photos}", f"mask={masks}", "progress=false"],
        output_dir=tmp_path / "out", data_dir=tmp_path,
    )  # fmt: skip
    records = harmonize_files(cfg)
    assert sorted(Path(r["output"]).name for r in records) == [
        "a3630_1_5_harmonized.png", "holiday_harmonized.png", "photo_harmonized.png",
    ]  # fmt: skip
    assert all(Image.open(r["output"]).size == (130, 90) for r in records)


def test_one_mask_rule_for_training_and_harmonizing(checkpoint: Path, tmp_path: Path, caplog) -> None:
    """Issue 17 item 4: a noisy JPEG mask changes no pixel the > 127 rule calls background
    (mask_mode=binary, the default), soft mode blends and says how many, both warn."""
    import logging

    from raiha.io.image_io import load_mask

    composite = _photo()
    Image.fromarray(composite).save(tmp_path / "photo.png")
    box = np.zeros((90, 130), np.uint8)
    box[20:70, 30:100] = 255
    Image.fromarray(box).save(tmp_path / "mask.jpg", quality=40)  # compression noise around the box
    values = np.asarray(Image.open(tmp_path / "mask.jpg").convert("L"))
    background = values <= 127
    assert ((values > 0) & background).sum() > 50  # noise the rule calls background
    assert np.array_equal(load_mask(tmp_path / "mask.jpg"), ~background)  # the training rule
    model = Harmonizer.from_checkpoint(checkpoint)
    with caplog.at_level(logging.WARNING, logger="raiha.inference.inputs"):
        binary = model.harmonize(tmp_path / "photo.png", tmp_path / "mask.jpg")
    assert "mask_mode=binary treats them by the rule" in caplog.text
    assert np.array_equal(binary.image[background], composite[background])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="raiha.inference.inputs"):
        soft = model.harmonize(tmp_path / "photo.png", tmp_path / "mask.jpg", mask_mode="soft")
    assert "pixels that the > 127 rule calls background change too" in caplog.text
    assert not np.array_equal(soft.image[background], composite[background])
    with pytest.raises(ValueError, match="mask_mode='fuzzy'"):
        model.harmonize(tmp_path / "photo.png", tmp_path / "mask.jpg", mask_mode="fuzzy")
    cfg = compose_config("harmonize", [f"ckpt_path={checkpoint}", "input=x", "mask=y"],
                         output_dir=tmp_path / "out", data_dir=tmp_path)  # fmt: skip
    assert cfg.mask_mode == "binary"


def test_gallery_search_works_without_sgf_and_says_the_synthetic_extractor_is_synthetic_only(
    world: Path, tmp_path: Path, caplog
) -> None:
    """Issue 17 item 3: a checkpoint trained with retrieved references but plain attention
    (ablation_sgf) keeps its extractor and rule; a non-reference one says why it cannot search."""
    import logging

    card = build_model_card(compose_config("train", ["+experiment=ablation_sgf_synthetic"],
                                           output_dir=tmp_path / "r", data_dir=tmp_path))  # fmt: skip
    assert card["semantic"] is False and card["extractor"] == "synthetic"
    assert card["retrieval"]["eps_c"] == 0.7 and card["retrieval"]["image_size"] == 64
    model = Harmonizer.from_checkpoint(_write_checkpoint(tmp_path / "sgf_off.ckpt", "ablation_sgf_synthetic", tmp_path))
    assert model.settings is not None and model._extractor is None  # built on first gallery use only
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for record in read_split(world, "train")[:12]:
        (gallery / Path(record.real).name).write_bytes((world / record.real).read_bytes())
    photos = tmp_path / "photos"  # "real photos": nothing the synthetic extractor knows
    photos.mkdir()
    for index in range(2):
        Image.fromarray(_photo(64, 64) // (index + 1)).save(photos / f"p{index}.png")
    record = read_split(world, "test")[0]
    with caplog.at_level(logging.WARNING, logger="raiha.inference.harmonizer"):
        model.harmonize(world / record.composite, world / record.mask, gallery=gallery, cache_dir=tmp_path / "s")
        result = model.harmonize(world / record.composite, world / record.mask, gallery=photos, cache_dir=tmp_path / "s")
    assert caplog.text.count("only understands the built-in synthetic world") >= 2  # once, then in the note
    assert result.reference is None and "only understands the built-in synthetic world" in result.note
    plain = Harmonizer.from_checkpoint(_write_checkpoint(tmp_path / "plain.ckpt", "synthetic_quick", tmp_path))
    with pytest.raises(ValueError, match="trained without retrieved references"):
        plain.harmonize(world / record.composite, world / record.mask, gallery=gallery)

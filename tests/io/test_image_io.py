"""Image and mask decoding (modes, bit depths, corrupt files) and resizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from raiha.io.errors import RaihaDataError
from raiha.io.image_io import (
    check_same_size,
    image_size,
    load_mask,
    load_rgb,
    resize_mask,
    resize_rgb,
)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # [H, W, 3]


def test_png_round_trip_is_exact(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "x.png")
    loaded = load_rgb(tmp_path / "x.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (24, 40, 3)
    np.testing.assert_array_equal(loaded, rgb)


def test_jpeg_decodes_close(tmp_path: Path) -> None:
    smooth = np.tile(
        np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (24, 1, 3)
    )  # [24, 40, 3]
    Image.fromarray(smooth).save(tmp_path / "x.jpg", quality=95)
    loaded = load_rgb(tmp_path / "x.jpg")
    assert loaded.shape == (24, 40, 3)
    assert np.abs(loaded.astype(int) - smooth).mean() < 3


def test_grey_rgba_palette_and_16_bit(tmp_path: Path, rgb: np.ndarray) -> None:
    grey = rgb[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey.png"), np.stack([grey] * 3, axis=2))

    alpha = np.full((24, 40, 1), 7, dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2)).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "rgba.png"), rgb)

    palette = Image.fromarray(rgb).quantize(colors=16)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(
        load_rgb(tmp_path / "palette.png"), np.asarray(palette.convert("RGB"))
    )

    wide = (np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 68).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    expected = np.rint(wide / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(load_rgb(tmp_path / "wide.png")[:, :, 1], expected)
    np.testing.assert_array_equal(load_mask(tmp_path / "wide.png"), expected > 127)


def test_masks_one_and_three_channels(tmp_path: Path) -> None:
    truth = np.zeros((30, 50), dtype=bool)
    truth[5:20, 10:35] = True
    Image.fromarray(truth.astype(np.uint8) * 255).save(tmp_path / "l.png")
    Image.fromarray(np.stack([truth.astype(np.uint8) * 255] * 3, axis=2)).save(tmp_path / "rgb.png")
    for name in ("l.png", "rgb.png"):
        mask = load_mask(tmp_path / name)
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, truth)


def test_mask_uses_max_over_channels_and_threshold(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[0, 0, 2] = 255  # only blue set: still foreground
    pixels[1, 1] = 127  # not above the default threshold
    pixels[2, 2] = 128
    Image.fromarray(pixels).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask[0, 0] and not mask[1, 1] and mask[2, 2] and mask.sum() == 2
    assert load_mask(tmp_path / "m.png", threshold=200).sum() == 1


def test_jpeg_mask_is_thresholded(tmp_path: Path) -> None:
    rows, cols = np.mgrid[:64, :64]
    truth = (rows - 30) ** 2 + (cols - 27) ** 2 < 17**2  # a disc: edges cross JPEG blocks
    Image.fromarray(truth.astype(np.uint8) * 255).save(tmp_path / "m.jpg", quality=75)
    raw = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert ((raw > 0) & (raw < 255)).any()  # lossy: not binary on disk
    assert (load_mask(tmp_path / "m.jpg") != truth).mean() < 0.01


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(RaihaDataError, match="not found") as error:
        load_rgb(tmp_path / "nowhere" / "a1_1_1.jpg")
    assert "a1_1_1.jpg" in str(error.value)
    with pytest.raises(RaihaDataError, match="not found"):
        load_mask(tmp_path / "a1_1.png")


@pytest.mark.parametrize("extension", ["jpg", "png"])
@pytest.mark.parametrize("force_flag", [False, True])
def test_truncated_files_raise(
    tmp_path: Path, rgb: np.ndarray, extension: str, force_flag: bool
) -> None:
    whole = tmp_path / f"whole.{extension}"
    Image.fromarray(rgb).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut_1_1.{extension}"
    cut.write_bytes(data[: len(data) // 2])
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = force_flag  # a library elsewhere may have switched it on
    try:
        for loader in (load_rgb, load_mask):
            with pytest.raises(RaihaDataError, match="corrupt or truncated") as error:
                loader(cut)
            assert "cut_1_1" in str(error.value) and "re-extract" in str(error.value)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is force_flag  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_not_an_image_raises(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is not a JPEG")
    with pytest.raises(RaihaDataError, match="fake.jpg"):
        load_rgb(fake)
    with pytest.raises(RaihaDataError, match="fake.jpg"):
        image_size(fake)


def test_resize_rgb(rgb: np.ndarray) -> None:
    assert resize_rgb(rgb, 16).shape == (16, 16, 3)
    assert resize_rgb(rgb, 16).dtype == np.uint8
    constant = np.full((30, 50, 3), (10, 200, 90), dtype=np.uint8)
    np.testing.assert_array_equal(
        resize_rgb(constant, 8), np.full((8, 8, 3), (10, 200, 90), dtype=np.uint8)
    )
    gradient = np.tile(
        np.arange(0, 250, 5, dtype=np.uint8)[None, :, None], (20, 1, 3)
    )  # [20, 50, 3]
    row = resize_rgb(gradient, 10)[0, :, 0].astype(int)
    assert (np.diff(row) > 0).all()
    square = rgb[:16, :16]
    assert resize_rgb(square, 16) is square


def test_resize_mask_half_and_tiny_objects() -> None:
    left_half = np.zeros((60, 100), dtype=bool)
    left_half[:, :50] = True
    small = resize_mask(left_half, 32)
    assert small.dtype == bool and small.shape == (32, 32)
    assert small[:, :16].all() and not small[:, 16:].any()
    speck = np.zeros((1000, 1000), dtype=bool)
    speck[500, 500] = True
    assert not resize_mask(speck, 16).any()  # a pixel of 1000 x 1000 vanishes at 16
    assert resize_mask(speck, 16, threshold=1e-6).sum() >= 1


def test_image_size_and_check_same_size(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "x.png")
    assert image_size(tmp_path / "x.png") == (40, 24)
    check_same_size("comp.jpg", (40, 24), "mask.png", (40, 24), "mask")
    with pytest.raises(
        RaihaDataError, match=r"mask m_1\.png is 30x20 but composite c_1_1\.jpg is 40x24"
    ):
        check_same_size("c_1_1.jpg", (40, 24), "m_1.png", (30, 20), "mask")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (valid CRCs, almost no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def test_an_image_over_the_pixel_limit_is_named_as_such(tmp_path, monkeypatch) -> None:
    """Issue 17 item 5: not 'corrupt or truncated', but the size, the limit and how to raise it."""
    import pytest

    from raiha.io.errors import RaihaDataError
    from raiha.io.image_io import image_size, load_rgb

    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    monkeypatch.delenv("RAIHA_MAX_IMAGE_PIXELS", raising=False)
    for read in (load_rgb, image_size):
        with pytest.raises(RaihaDataError) as caught:
            read(path)
        message = str(caught.value)
        assert "10,000,000,000 pixels" in message and "RAIHA_MAX_IMAGE_PIXELS" in message
        assert "corrupt or truncated" not in message and "re-extract" not in message
    monkeypatch.setenv("RAIHA_MAX_IMAGE_PIXELS", "0")  # no limit: the header is read
    try:
        assert image_size(path) == (100_000, 100_000)
    finally:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default, for the other tests

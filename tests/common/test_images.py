"""The one deterministic preprocessing: decode, orient, convert, resize, (C, H, W) uint8."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.contract import InputContract
from common.errors import UserError
from common.images import UnreadableImageError, load_image, load_thumbnail
from tests.image_files import write_blank_png


def contract(mode: str = "L", height: int = 4, width: int = 6, interpolation: str = "bilinear") -> InputContract:
    channels = 1 if mode == "L" else 3
    return InputContract(mode, height, width, interpolation, (0.5,) * channels, (0.25,) * channels)


def test_grayscale_keeps_pixels_exactly_when_size_matches(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", contract())
    assert out.dtype == np.uint8 and out.shape == (1, 4, 6)
    np.testing.assert_array_equal(out[0], pixels)


def test_rgb_layout_is_channels_first_in_rgb_order(tmp_path):
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, 30
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", contract("RGB"))
    assert out.shape == (3, 4, 6) and out.flags["C_CONTIGUOUS"]
    assert [int(out[c, 0, 0]) for c in range(3)] == [10, 20, 30]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"])
def test_resize_matches_pillow_with_the_named_filter(tmp_path, interpolation):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", contract("RGB", 5, 7, interpolation))
    expected = np.asarray(
        Image.fromarray(pixels).resize((7, 5), resample=getattr(Image.Resampling, interpolation.upper()))
    )
    assert out.shape == (3, 5, 7)
    np.testing.assert_array_equal(out, expected.transpose(2, 0, 1))


def test_colour_image_into_a_grayscale_contract_and_back(tmp_path):
    Image.fromarray(np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8)).save(tmp_path / "red.png")
    assert int(load_image(tmp_path / "red.png", contract("L"))[0, 0, 0]) == 76  # Pillow's ITU-R 601-2 luma
    Image.fromarray(np.full((4, 6), 99, dtype=np.uint8)).save(tmp_path / "gray.png")
    assert load_image(tmp_path / "gray.png", contract("RGB")).reshape(3, -1).min(axis=1).tolist() == [99, 99, 99]


def test_alpha_and_palette_images_are_converted(tmp_path):
    Image.fromarray(np.full((4, 6, 4), (1, 2, 3, 0), dtype=np.uint8)).save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png", contract("RGB"))[:, 0, 0].tolist() == [1, 2, 3]
    Image.fromarray(np.full((4, 6, 3), 51, dtype=np.uint8)).convert("P").save(tmp_path / "p.png")  # in the web palette
    assert load_image(tmp_path / "p.png", contract("RGB"))[:, 0, 0].tolist() == [51, 51, 51]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6), dtype=np.uint8)
    pixels[0, 0] = 255  # top-left marker
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 3  # rotated 180 degrees
    image.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "rot.jpg", contract())
    assert out[0, -1, -1] > 200 and out[0, 0, 0] < 50


def test_contract_validation_names_every_key():
    with pytest.raises(UserError) as excinfo:
        InputContract("CMYK", 0, 4, "cubic", (0.5,), (0.0,))
    message = str(excinfo.value)
    for key in ("color_mode", "height", "interpolation", "std"):
        assert f"{key}:" in message


def test_contract_round_trips_through_a_dict_and_refuses_unknown_keys():
    original = contract("RGB")
    assert InputContract.from_dict(original.to_dict()) == original
    with pytest.raises(UserError, match=r"model\.onnx: unknown key\(s\) \['layout'\]"):
        InputContract.from_dict({**original.to_dict(), "layout": "NCHW"}, source="model.onnx")
    with pytest.raises(UserError, match=r"missing key\(s\) \['mean'\]"):
        InputContract.from_dict({k: v for k, v in original.to_dict().items() if k != "mean"})
    mismatched = {**original.to_dict(), "mean": [0.5]}
    with pytest.raises(UserError, match="mean needs 3 value"):
        InputContract.from_dict(mismatched)


# 16-bit and float images: scaled to 8 bits by one rule (docs/data.md, "Images"), never clipped.
RAMP16 = (np.arange(24, dtype=np.uint32).reshape(4, 6) * 2849).astype(np.uint16)  # 0..65527


def save_mode(path, values: np.ndarray, mode: str) -> None:
    """Save ``values`` as a Pillow image of ``mode`` (PNG for I;16, TIFF for the others)."""
    if mode == "I;16B":
        Image.frombytes(mode, values.shape[::-1], values.astype(">u2").tobytes()).save(path)
    else:
        Image.fromarray(values).save(path)


@pytest.mark.parametrize(("suffix", "mode", "values"), [
    ("png", "I;16", RAMP16),
    ("tiff", "I;16", RAMP16),
    ("tiff", "I;16B", RAMP16),
    ("tiff", "I", RAMP16.astype(np.int32)),
])
def test_16_bit_images_keep_their_high_byte(tmp_path, suffix, mode, values):
    path = tmp_path / f"deep.{suffix}"
    save_mode(path, values, mode)
    with Image.open(path) as opened:
        assert opened.mode == mode  # the file really is what the case says
    expected = (RAMP16 >> 8).astype(np.uint8)
    np.testing.assert_array_equal(load_image(path, contract())[0], expected)
    np.testing.assert_array_equal(load_image(path, contract("RGB")), np.stack([expected] * 3))
    assert len(np.unique(expected)) == 24  # Pillow's convert("L") made all but the first 255


def test_an_8_bit_image_stored_in_16_bits_decodes_to_the_same_pixels(tmp_path):
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(pixels).save(tmp_path / "8.png")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "16.png")  # 0..255 -> 0..65535
    square = contract(height=16, width=16)
    np.testing.assert_array_equal(load_image(tmp_path / "16.png", square), load_image(tmp_path / "8.png", square))


def test_float_images_in_0_to_1_are_scaled_by_255(tmp_path):
    values = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    Image.fromarray(values).save(tmp_path / "f.tiff")
    expected = np.rint(values * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "f.tiff", contract())[0], expected)
    assert expected.max() == 255 and expected.min() == 0


@pytest.mark.parametrize(("values", "reason"), [
    (np.full((4, 6), 70000, dtype=np.int32), "mode I image with values 70000..70000; this project reads 0..65535"),
    (np.full((4, 6), -1, dtype=np.int32), "mode I image with values -1..-1; this project reads 0..65535"),
    (np.full((4, 6), 1.5, dtype=np.float32), "mode F image with values 1.5..1.5; this project reads 0..1"),
    (np.full((4, 6), np.nan, dtype=np.float32), "mode F image with values nan..nan; this project reads 0..1"),
])
def test_values_outside_a_modes_range_make_the_image_unreadable(tmp_path, values, reason):
    Image.fromarray(values).save(tmp_path / "odd.tiff")
    with pytest.raises(UnreadableImageError) as excinfo:
        load_image(tmp_path / "odd.tiff", contract())
    assert excinfo.value.reason.startswith(reason)


@pytest.mark.parametrize("side", [9460, 14000])  # above Pillow's warning limit (89.5 M pixels), above its error limit
def test_a_decompression_bomb_is_unreadable_without_being_decoded(tmp_path, side):
    bomb = write_blank_png(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 200_000
    for read in (lambda: load_image(bomb, contract()), lambda: load_thumbnail(bomb, 96)):
        with pytest.raises(UnreadableImageError, match="decompression bomb") as excinfo:
            read()
        if side == 9460:  # Pillow only warns here; we refuse, with the size
            assert "decompression bomb: 9460x9460 = 89,491,600 pixels, more than the 89,478,485" in str(excinfo.value)


def test_thumbnails_fit_the_square_from_a_reduced_decode(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    with Image.open(tmp_path / "big.jpg") as opened:
        opened.draft("RGB", (96, 96))
        assert opened.size == (225, 150)  # what the JPEG decoder makes at 1/4 scale
    thumbnail = load_thumbnail(tmp_path / "big.jpg", 96)
    assert thumbnail.mode == "RGB" and thumbnail.size == (96, 64)
    Image.fromarray(RAMP16).save(tmp_path / "deep.png")
    small = load_thumbnail(tmp_path / "deep.png", 96)  # never enlarged; 16 bits scaled like the network input
    assert small.size == (6, 4)
    np.testing.assert_array_equal(np.asarray(small)[..., 0], RAMP16 >> 8)

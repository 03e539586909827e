"""The one deterministic preprocessing: decode, orient, convert, resize, (C, H, W) uint8."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.contract import InputContract
from common.errors import UserError
from common.images import load_image


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

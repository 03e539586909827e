"""Contracts at the seams between the stages.

Evaluation must feed a model exactly what training fed the network: the same bytes,
for the same image, under the same contract.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.contract import InputContract
from common.images import decode_samples
from common.lists import load_dataset, read_split
from networks import load_network_config
from train.data.loading import load_split


def evaluation_images(dataset, split: str, contract: InputContract) -> np.ndarray:
    samples = read_split(dataset, split)
    batches = list(decode_samples(dataset, samples, contract, batch_size=7, workers=3))
    assert [s for kept, _ in batches for s in kept] == samples
    return np.concatenate([images for _, images in batches])


def test_evaluation_decodes_the_digits_exactly_as_training_does(digits_root):
    contract = load_network_config("digits_cnn").input  # 8x8 upsampled to 16x16, bilinear
    dataset = load_dataset(digits_root)
    for split in ("val", "test"):
        training = load_split(dataset, split, contract, "error", in_memory=True).images.numpy()
        lazy = load_split(dataset, split, contract, "error", in_memory=False)
        assert lazy.images is None
        np.testing.assert_array_equal(evaluation_images(dataset, split, contract), training)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "lanczos", "nearest"])
def test_colour_photos_of_any_size_decode_identically(write_dataset, interpolation):
    rng = np.random.default_rng(0)
    images = {f"raw/{i}.{ext}": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
              for i, (h, w, ext) in enumerate([(31, 47, "png"), (64, 20, "jpg"), (12, 12, "bmp"), (100, 80, "png")])}
    root = write_dataset(classes=["a", "b"], images=images,
                         lists={"test": "".join(f"{p} {i % 2}\n" for i, p in enumerate(images))})
    gray = root / "raw" / "gray.png"
    Image.fromarray(rng.integers(0, 256, size=(40, 30), dtype=np.uint8)).save(gray)
    with open(root / "lists" / "test.txt", "a") as stream:
        stream.write("raw/gray.png 1\n")
    contract = InputContract("RGB", 24, 32, interpolation, (0.5,) * 3, (0.25,) * 3)
    dataset = load_dataset(root)
    training = load_split(dataset, "test", contract, "error", in_memory=True).images.numpy()
    assert training.shape == (5, 3, 24, 32)
    np.testing.assert_array_equal(evaluation_images(dataset, "test", contract), training)


@pytest.mark.parametrize("color_mode", ["L", "RGB"])
def test_16_bit_and_float_images_decode_identically_and_scaled(write_dataset, color_mode):
    ramp = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) * 109).astype(np.uint16)  # 0..65291
    root = write_dataset(classes=["a", "b"], images={"raw/8bit.png": (ramp >> 8).astype(np.uint8)}, lists={})
    Image.fromarray(ramp).save(root / "raw" / "16bit.png")  # opens as I;16
    Image.fromarray(ramp.astype(np.int32)).save(root / "raw" / "32bit.tiff")  # opens as I
    Image.fromarray(ramp.astype(np.float32) / 65535).save(root / "raw" / "float.tiff")  # opens as F
    (root / "lists" / "test.txt").write_text("raw/8bit.png 0\nraw/16bit.png 1\nraw/32bit.tiff 0\nraw/float.tiff 1\n")
    channels = 1 if color_mode == "L" else 3
    dataset = load_dataset(root)
    float_scaled = np.rint(ramp.astype(np.float32) / 65535 * np.float32(255)).astype(np.uint8)
    for height, width in ((20, 30), (12, 9)):
        contract = InputContract(color_mode, height, width, "bilinear", (0.5,) * channels, (0.25,) * channels)
        training = load_split(dataset, "test", contract, "error", in_memory=True).images.numpy()
        np.testing.assert_array_equal(evaluation_images(dataset, "test", contract), training)
        np.testing.assert_array_equal(training[1], training[0])  # 16 bits: the high byte, as the 8-bit file
        np.testing.assert_array_equal(training[2], training[0])
    full = InputContract(color_mode, 20, 30, "bilinear", (0.5,) * channels, (0.25,) * channels)
    floats = load_split(dataset, "test", full, "error", in_memory=True).images.numpy()[3]
    np.testing.assert_array_equal(floats, np.stack([float_scaled] * channels))  # float: round(value * 255)

"""Fixtures for the prediction tests, built without torch (they run on the evaluation machine too).

The model is the evaluation tests' nearest-class-mean classifier of the digits
(:func:`tests.evaluate.conftest.centroid_model`) with its sha256 sidecar; the images
are the bundled digits written again in mixed formats, modes, sizes and folders.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.integrity import record_sha256
from common.lists import load_dataset, read_split
from evaluate.evaluation import EvaluateOptions, evaluate
from tests.evaluate.conftest import centroid_model

FORMATS = ("png", "jpg", "bmp", "gif", "tiff", "webp", "png16", "jpg-rotated")
"""How the mixed folder writes its images, in turn."""


@dataclass(frozen=True)
class Models:
    """Two centroid models of the digits, each with its sidecar.

    Attributes:
        model: The model the tests predict with.
        other: Another one (fewer training images: other weights, another sha256).
    """

    model: Path
    other: Path


def write_mixed(root: Path, digits_root: Path, count: int = 160) -> Path:
    """The digits' test images again, as a user's folder: mixed formats, modes, sizes, nesting, junk."""
    dataset = load_dataset(digits_root)
    lines = []
    for index, sample in enumerate(read_split(dataset, "test")[:count]):
        pixels = np.asarray(Image.open(digits_root / sample.path))  # (8, 8) uint8
        kind = FORMATS[index % len(FORMATS)]
        image = Image.fromarray(pixels).resize((8 + index % 3 * 4, 8 + index % 2 * 5), Image.Resampling.NEAREST)
        folder = root / "raw" / str(sample.label) / ("deep/er" if index % 5 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{index:04d}.{kind.split('-')[0].removesuffix('16')}"
        _save(image, folder / name, kind)
        lines.append(f"{(folder / name).relative_to(root).as_posix()} {sample.label}")
    (root / "raw" / "notes.txt").write_text("not an image\n")
    (root / "raw" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / "lists").mkdir()
    (root / "lists" / "test.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(digits_root / "classes.txt", root / "classes.txt")
    return root


def _save(image: Image.Image, path: Path, kind: str) -> None:
    if kind == "jpg":
        image.convert("RGB").save(path, quality=95)
    elif kind == "jpg-rotated":  # stored turned; the EXIF orientation turns it back
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 clockwise to display
        image.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    elif kind == "png16":
        Image.fromarray(np.asarray(image).astype(np.uint16) * 257).save(path)  # I;16
    elif kind == "gif":
        image.convert("P").save(path)
    elif kind == "webp":
        image.convert("RGB").save(path, lossless=True)
    else:
        image.save(path)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> Models:
    base = tmp_path_factory.mktemp("models")
    model = centroid_model(base / "digits.onnx", digits_root)
    record_sha256(model)
    other = centroid_model(base / "other.onnx", digits_root, train_images=300)
    record_sha256(other)
    return Models(model, other)


@pytest.fixture(scope="session")
def mixed(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> Path:
    """A data set folder: ``raw/<digit>/...`` in mixed formats, sizes and folders, a text file and a broken JPEG
    among them, and ``lists/test.txt`` naming the readable images."""
    return write_mixed(tmp_path_factory.mktemp("mixed") / "mixed", digits_root)


@pytest.fixture(scope="session")
def evaluation(tmp_path_factory: pytest.TempPathFactory, models: Models, mixed: Path) -> Path:
    """An evaluation of ``models.model`` on ``mixed``'s list (precision targets 0.9, 0.99; recall target 0.9)."""
    base = tmp_path_factory.mktemp("evaluation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMAGEPIPE_OUTPUT", str(base))
        return evaluate(EvaluateOptions(model=models.model, list=mixed / "lists" / "test.txt", name="mixed",
                                        bootstrap=0, precision_targets=(0.9, 0.99), recall_targets=(0.9,),
                                        bad_cases=0, per_pair=0, progress=False)).folder

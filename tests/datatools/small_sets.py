"""Small data sets and result folders for the data-loop tests: fast to write, images distinct by construction."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from common.files import file_sha256
from common.list_versions import record_created
from common.lists import load_dataset, read_split
from common.results import EvaluationRecord, Predictions, write_evaluation_record, write_predictions

SPLITS = {"train": range(0, 6), "val": range(6, 8), "test": range(8, 10)}
"""Image numbers of each class in each list (10 per class); ``dev`` is the first two of train."""


def pattern(seed: int, size: int = 32) -> np.ndarray:
    """A smooth random RGB picture, unlike every other seed's: 4x4 random colours, enlarged bicubically."""
    colours = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(colours).resize((size, size), Image.Resampling.BICUBIC))


def write_set(root: Path, classes: tuple[str, ...] = ("bird", "cat", "dog"), names: tuple[str, ...] | None = None
              ) -> Path:
    """A data set of 10 distinct images per class, lists train (6), val (2), test (2), dev (2 of train), its
    history started as the data tools start it. ``names[i]`` names image ``i`` of each class (default ``<i>.png``)."""
    (root / "lists").mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    paths = {}
    for label, name in enumerate(classes):
        for number in range(10):
            relative = f"raw/{name}/{names[number] if names else f'{number}.png'}"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pattern(100 * label + number)).save(root / relative)
            paths[label, number] = relative
    lists = {split: [(label, n) for label in range(len(classes)) for n in numbers] for split, numbers in SPLITS.items()}
    lists["dev"] = [(label, n) for label in range(len(classes)) for n in (0, 1)]
    for split, members in lists.items():
        text = f"# {split}; <path> <label>\n" + "".join(f"{paths[member]} {member[0]}\n" for member in members)
        (root / "lists" / f"{split}.txt").write_text(text, encoding="utf-8")
    record_created(root, "the test", "small_sets.write_set")
    return root


def jpeg_copy(source: Path, target: Path, scale: float = 0.9, quality: int = 70) -> Path:
    """A re-encoded copy: resized by ``scale``, saved as JPEG of ``quality``."""
    with Image.open(source) as image:
        side = (round(image.width * scale), round(image.height * scale))
        buffer = io.BytesIO()
        image.convert("RGB").resize(side, Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=quality)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return target


def probabilities_for(root: Path, split: str, folder: Path, prefer: dict[str, int] | None = None,
                      out_of_sample: bool = False, training_lists: dict | None = None) -> Path:
    """An evaluation (or cross-validation) folder for a list: confident in each image's label, or in ``prefer``'s."""
    dataset = load_dataset(root)
    samples = read_split(dataset, split)
    probabilities = np.full((len(samples), dataset.num_classes), 0.02, dtype=np.float64)
    for row, sample in enumerate(samples):
        probabilities[row, (prefer or {}).get(sample.path, sample.label)] = 1.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    folder.mkdir(parents=True)
    write_predictions(folder / "predictions.csv", Predictions([s.path for s in samples],
                                                              np.array([s.label for s in samples]),
                                                              probabilities.astype(np.float32),
                                                              list(dataset.class_names)))
    list_path = dataset.list_path(split)
    write_evaluation_record(folder, EvaluationRecord(
        name=folder.name, created="2024-01-01T00:00:00+00:00", model="test model", list=str(list_path),
        class_names=list(dataset.class_names), dataset_root=str(root.resolve()), list_sha256=file_sha256(list_path),
        training_lists=training_lists, out_of_sample={"method": "test"} if out_of_sample else None))
    return folder


def trained_on(root: Path, split: str = "train") -> dict:
    """``training_lists`` of a model trained on ``split`` of the data set as it is now, validated on val."""
    entry = {"path": str(root / "lists" / f"{split}.txt"), "sha256": file_sha256(root / "lists" / f"{split}.txt"),
             "role": "train"}
    return {split: entry, "val": {"path": str(root / "lists" / "val.txt"),
                                  "sha256": file_sha256(root / "lists" / "val.txt"), "role": "val"}}

"""Fixtures shared by all tests. Nothing here imports torch: the evaluation
machine runs part of this suite without it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.digits import prepare_digits
from tests.services import postgres  # noqa: F401 (a fixture: a throwaway PostgreSQL server)


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point data/, model/ and output/ at temporary folders: tests never write in the repo."""
    base = tmp_path_factory.mktemp("folders")
    for variable in ("IMAGEPIPE_DATA", "IMAGEPIPE_MODEL", "IMAGEPIPE_OUTPUT"):
        monkeypatch.setenv(variable, str(base / variable.lower()))


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled digits data set, prepared once per session in a temporary folder."""
    return prepare_digits(tmp_path_factory.mktemp("digits") / "digits").root


DatasetWriter = Callable[..., Path]


@pytest.fixture
def write_dataset(tmp_path: Path) -> DatasetWriter:
    """Write a tiny data set: ``write_dataset(classes=[...], images={path: array}, lists={split: text})``."""

    def write(
        classes: list[str] | str = ("cat", "dog", "bird"),
        images: dict[str, np.ndarray] | None = None,
        lists: dict[str, str] | None = None,
        name: str = "tiny",
    ) -> Path:
        root = tmp_path / name
        (root / "lists").mkdir(parents=True)
        text = classes if isinstance(classes, str) else "".join(f"{c}\n" for c in classes)
        (root / "classes.txt").write_text(text)
        if images is None:
            images = {f"raw/{i}.png": np.full((4, 6), 40 * i, dtype=np.uint8) for i in range(3)}
        for relative, pixels in images.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / relative)
        for split, content in (lists or {}).items():
            (root / "lists" / f"{split}.txt").write_text(content)
        return root

    return write


TINY_NETWORK = """\
version: 1
arch: {name: small_cnn, params: {channels: [8, 16], dropout: 0.1}}
num_classes: 10
input: {color_mode: L, height: 8, width: 8, interpolation: bilinear, mean: [0.3], std: [0.4]}
"""
"""A tiny CNN config at the digits' native 8x8 (YAML)."""


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run of the tiny network on the digits."""

    run_dir: Path
    network_config: Path
    digits_root: Path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> TrainedRun:
    from train.config import load_train_config
    from train.run import RunOptions, train

    folder = tmp_path_factory.mktemp("trained")
    network = folder / "tiny.yaml"
    network.write_text(TINY_NETWORK)
    previous = os.environ.get("IMAGEPIPE_OUTPUT")
    os.environ["IMAGEPIPE_OUTPUT"] = str(folder / "output")
    try:
        config = load_train_config(overrides=[f"network={network}", f"data.dataset={digits_root}", "epochs=4",
                                              "batch_size=32", "optim.lr=0.01"])
        result = train(config, RunOptions(progress=False, device="cpu"))
    finally:
        if previous is None:
            os.environ.pop("IMAGEPIPE_OUTPUT")
        else:
            os.environ["IMAGEPIPE_OUTPUT"] = previous
    return TrainedRun(result.run_dir, network, digits_root)

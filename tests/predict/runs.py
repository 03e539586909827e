"""Helpers of the prediction tests: run the command as users do, read what it wrote."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from common.cli import run_main
from tests.commands import command_main


def output_root() -> Path:
    """``$IMAGEPIPE_OUTPUT/predict`` of this test."""
    return Path(os.environ["IMAGEPIPE_OUTPUT"]) / "predict"


def run_predict(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``pipenv run predict <argv>`` in this process, as its entry point runs; ``(status, stdout, stderr)``."""
    capsys.readouterr()
    try:
        status = run_main(command_main("predict"), argv)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def probabilities_by_path(folder: Path, class_names: list[str]) -> dict[str, np.ndarray]:
    """Every class's probability per image, from a ``predictions.csv`` written with ``--top-k`` = the class count."""
    out = {}
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            values = np.zeros(len(class_names), dtype=np.float32)
            for i in range(1, len(class_names) + 1):
                values[class_names.index(row[f"class_{i}"])] = np.float32(row[f"probability_{i}"])
            out[row["path"]] = values
    return out


def evaluation_probabilities(folder: Path, root: Path) -> dict[str, np.ndarray]:
    """An evaluation's ``predictions.csv`` as absolute image path -> scores ``(K,)`` float32."""
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as stream:
        return {str(root / row[0]): np.array(row[3:], dtype=np.float32) for row in list(csv.reader(stream))[1:]}


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under the folders, by path, with its bytes."""
    found = {}
    for top in folders:
        for path in sorted(top.rglob("*")) if top.exists() else []:
            found[str(path)] = path.read_bytes() if path.is_file() else b"<folder>"
    return found

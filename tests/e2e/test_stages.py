"""train -> export -> evaluate on the bundled digits, through the command lines, in temporary folders.

The stages talk only through files: evaluation gets nothing but the ONNX file, copied
alone to another folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.images import load_samples
from common.lists import load_dataset, read_split
from common.paths import PROJECT_ROOT
from networks import build_network
from networks.checkpoint import checkpoint_network_config, read_checkpoint
from tests.predict.runs import evaluation_probabilities, probabilities_by_path


def stage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_train_export_evaluate(tmp_path, digits_root):
    env = {"IMAGEPIPE_DATA": str(digits_root.parent), "IMAGEPIPE_MODEL": str(tmp_path / "model"),
           "IMAGEPIPE_OUTPUT": str(tmp_path / "output")}
    stage("train", "epochs=6", "--no-progress", "--device", "cpu", env=env)
    (run_dir,) = (tmp_path / "output" / "train").iterdir()
    stage("deploy", "--quantize", "int8", "--int8-min-agreement", "0.95", env=env)
    model = tmp_path / "model" / f"{run_dir.name}.onnx"
    assert model.is_file() and (tmp_path / "model" / f"{run_dir.name}-int8.onnx").is_file()

    alone = tmp_path / "evaluation-box" / "model.onnx"
    alone.parent.mkdir()
    shutil.copy(model, alone)  # no card beside it, no run folder: the model describes itself
    out = stage("evaluate", "--model", str(alone), "--no-progress", env=env)
    assert "360 samples: accuracy" in out
    folder = tmp_path / "output" / "eval" / "model-test"
    metrics = json.loads((folder / "metrics.json").read_text())

    checkpoint = read_checkpoint(run_dir / "checkpoints" / "best.pt")
    network = build_network(checkpoint_network_config(checkpoint, "best.pt"))
    network.load_state_dict(checkpoint["model"])
    dataset = load_dataset(digits_root)
    images, labels, _ = load_samples(dataset, read_split(dataset, "test"), network.config.input)
    with torch.no_grad():
        torch_predicted = network.eval()(torch.from_numpy(images)).argmax(dim=1).numpy()
    assert metrics["accuracy"] == pytest.approx(float((torch_predicted == labels).mean()))
    assert metrics["accuracy"] > 0.9

    stage("evaluate", "--model", str(tmp_path / "model" / f"{run_dir.name}-int8.onnx"), "--name", "int8",
          "--no-progress", env=env)
    _predict_matches_evaluate(alone, folder, digits_root, env, "fp32")
    _predict_matches_evaluate(tmp_path / "model" / f"{run_dir.name}-int8.onnx", tmp_path / "output" / "eval" / "int8",
                              digits_root, env, "int8")
    compared = stage("evaluate", "compare", str(folder), "int8", env=env)
    assert "fixed" in compared and (tmp_path / "output" / "eval" / "compare-model-test-vs-int8" / "compare.html").is_file()
    assert np.isfinite(metrics["macro"]["ap"])


def _predict_matches_evaluate(model, evaluation, digits_root, env: dict[str, str], name: str) -> None:
    """``predict`` on the whole raw folder, at the evaluation's operating point: evaluate's probabilities, bitwise."""
    out = stage("predict", str(digits_root / "raw"), "--model", str(model), "--top-k", "10", "--name", name,
                "--operating-point", str(evaluation), "--recall", "0.95", "--batch-size", "100", "--no-progress",
                env=env)
    assert "1,797 image(s) predicted" in out
    folder = Path(env["IMAGEPIPE_OUTPUT"]) / "predict" / name
    got = probabilities_by_path(folder, [str(d) for d in range(10)])
    expected = evaluation_probabilities(evaluation, digits_root)
    assert len(expected) == 360 and all(np.array_equal(got[path], values) for path, values in expected.items())

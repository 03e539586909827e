"""The data loop on the digits with injected noise, through the command lines: cross-validate, review, decide
(the review's suggestions, accepted automatically), apply, retrain, compare; the list history shows each step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.cli import run_main
from common.files import atomic_write_text, read_csv, read_text
from common.list_versions import read_history
from common.lists import load_dataset, read_split
from common.paths import data_dir, model_dir, output_dir
from datatools.review.decisions import accept_suggestions
from tests.commands import command_main
from tests.conftest import TINY_NETWORK


def flip(root: Path, fraction: float, seed: int) -> dict[str, int]:
    """A hand edit: give a seeded share of the train list's images another label (dev follows); path -> new label."""
    dataset = load_dataset(root)
    samples = read_split(dataset, "train")
    rng = np.random.default_rng(seed)
    new = {samples[i].path: int((samples[i].label + rng.integers(1, 10)) % 10)
           for i in rng.choice(len(samples), size=round(fraction * len(samples)), replace=False)}
    for split in ("train", "dev"):
        lines = [line.rsplit(maxsplit=1) for line in read_text(dataset.list_path(split)).splitlines()]
        atomic_write_text(dataset.list_path(split), "".join(f"{path} {new.get(path, label)}\n" for path, label in lines
                                                            if not path.startswith("#")))
    return new


def run(command: str, *argv: str) -> None:
    assert run_main(command_main(command), list(argv)) == 0, f"{command} {' '.join(argv)} failed"


@pytest.mark.slow
def test_the_loop_finds_the_flipped_labels_cleans_them_and_records_every_step(digits_root, tmp_path, capsys):
    root = Path(shutil.copytree(digits_root, data_dir() / "digits"))  # in the data folder, as the quick start has it
    tiny_network = tmp_path / "tiny.yaml"
    tiny_network.write_text(TINY_NETWORK)
    flipped = flip(root, 0.05, seed=0)
    training = [f"network={tiny_network}", f"data.dataset={root}", "epochs=4", "batch_size=32", "optim.lr=0.01",
                "--device", "cpu", "--no-progress"]
    run("crossval", "--folds", "3", "--name", "noisy", *training)
    output = output_dir()
    run("review", "--dataset", str(root), "--probabilities", str(output / "crossval" / "noisy"))
    (review,) = (output / "review").iterdir()
    header, *rows = read_csv(review / "decisions.csv")
    flagged = {row[header.index("path")] for row in rows if row[header.index("kind")] == "label_issue"}
    found = flagged & set(flipped)
    assert len(found) >= 0.8 * len(flipped) and len(found) >= 0.8 * len(flagged), (len(flipped), len(flagged),
                                                                                      len(found))
    run("train", *training, "--name", "noisy-model")
    accept_suggestions(review / "decisions.csv", ("label_issue",))
    run("prepare-data", "apply", str(review / "decisions.csv"))
    labels = {s.path: s.label for s in read_split(load_dataset(root), "train")}
    fixed = sum(labels[path] == int(path.split("/")[1]) for path in found)
    assert fixed >= 0.9 * len(found)  # the suggested label is the true one
    run("train", *training, "--name", "cleaned-model")
    history = read_history(root)
    assert [(c.kind, {s: e["version"] for s, e in c.lists.items()}) for c in history.changes] == [
        ("created", {"dev": 1, "test": 1, "train": 1, "val": 1}), ("hand_edit", {"dev": 2, "train": 2}),
        ("apply", {"dev": 3, "train": 3})]
    assert {image["path"] for image in history.changes[2].images} == flagged
    capsys.readouterr()
    for name, version in (("noisy", 2), ("cleaned", 3)):
        (folder,) = (output / "train").glob(f"{name}-model-*")
        run("runs", "show", str(folder))
        assert f"  train: train v{version}, " in capsys.readouterr().out
        run("export", "--run", str(folder), "--name", name, "--network-config", str(tiny_network))
        run("evaluate", "--model", str(model_dir() / f"{name}.onnx"), "--list",
            str(root / "lists" / "test.txt"), "--name", name, "--no-progress", "--bootstrap", "0")
    capsys.readouterr()
    run("evaluate", "compare", "noisy", "cleaned", "--bootstrap", "0")
    out = capsys.readouterr().out
    assert out.startswith("accuracy ") and "warning" not in out  # both evaluated test v1
    card = json.loads((model_dir() / "cleaned.json").read_text())
    assert card["source"]["lists"]["train"]["version"] == 3
    record = json.loads((output / "eval" / "cleaned" / "evaluation.json").read_text())
    assert record["list_version"] == 1 and record["training_lists"]["train"]["version"] == 3


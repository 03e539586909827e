"""crossval: k ordinary runs, one fold held out each; out-of-fold probabilities of every training image in the
predictions.csv format with their provenance; the same command again continues where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from common.cli import run_main
from common.errors import UserError
from common.files import file_sha256, read_csv, read_text
from common.list_versions import read_history, record_created
from common.lists import load_dataset, read_split
from common.paths import PROJECT_ROOT
from common.results import read_results
from common.run_folder import list_runs
from tests.commands import command_line, command_main
from train.experiments.crossval import CrossvalOptions, crossval

pytestmark = pytest.mark.slow


@pytest.fixture
def small_digits(digits_root: Path, tmp_path: Path) -> Path:
    """The digits' images (linked), with short lists: train 20 per class, val 5, test 5; its history started."""
    root = tmp_path / "small"
    (root / "lists").mkdir(parents=True)
    (root / "raw").symlink_to(digits_root / "raw")
    (root / "classes.txt").write_text((digits_root / "classes.txt").read_text())
    by_class: dict[int, list[str]] = {}
    for sample in read_split(load_dataset(digits_root), "train"):
        by_class.setdefault(sample.label, []).append(sample.path)
    for split, (start, stop) in {"train": (0, 20), "val": (20, 25), "test": (25, 30)}.items():
        lines = [f"{path} {label}\n" for label, paths in sorted(by_class.items()) for path in paths[start:stop]]
        (root / "lists" / f"{split}.txt").write_text("".join(lines))
    record_created(root, "the test", "a subset of the digits")
    return root


def options(network: Path, root: Path, *extra: str, **changes) -> CrossvalOptions:
    overrides = (f"network={network}", f"data.dataset={root}", "batch_size=32", "optim.lr=0.01",
                 "schedule.warmup_epochs=0", *extra)
    return CrossvalOptions(**{"overrides": overrides, "folds": 2, "device": "cpu", "progress": False, **changes})


def test_every_training_image_gets_out_of_fold_probabilities_from_ordinary_runs(tiny_network, small_digits):
    result = crossval(options(tiny_network, small_digits, "epochs=2"))
    assert result.folder.name == "small-cv2-s0-v1" and result.samples == 200 and len(result.runs) == 2
    folds = {p.stem for p in (small_digits / "lists").glob("cv2-*.txt")}
    assert folds == {f"cv2-s0-v1-f{f}-{part}" for f in (1, 2) for part in ("train", "holdout")}
    held = [read_split(load_dataset(small_digits), f"cv2-s0-v1-f{f}-holdout") for f in (1, 2)]
    trained = [read_split(load_dataset(small_digits), f"cv2-s0-v1-f{f}-train") for f in (1, 2)]
    assert {s.path for s in held[0]} == {s.path for s in trained[1]} and len(held[0]) == len(held[1]) == 100
    assert np.bincount([s.label for s in held[0]]).tolist() == [10] * 10  # stratified
    predictions, record = read_results(result.folder / "predictions.csv")
    train = read_split(load_dataset(small_digits), "train")
    assert predictions.paths == [s.path for s in train] and predictions.labels.tolist() == [s.label for s in train]
    assert record.list_version == 1 and record.list_sha256 == file_sha256(small_digits / "lists" / "train.txt")
    runs = record.out_of_sample["runs"]
    assert [(r["fold"], r["holdout"], r["samples"]) for r in runs] == [(1, "cv2-s0-v1-f1-holdout", 100),
                                                                        (2, "cv2-s0-v1-f2-holdout", 100)]
    assert all(r["checkpoint"].endswith("best.pt") and len(r["checkpoint_sha256"]) == 64 for r in runs)
    folds_csv = {path: int(fold) for path, fold in read_csv(result.folder / "folds.csv")[1:]}
    assert {p for p, f in folds_csv.items() if f == 1} == {s.path for s in held[0]}
    assert sorted(run.name for run in list_runs()) == sorted(Path(r["run_dir"]).name for r in runs)
    manifest = json.loads((Path(runs[0]["run_dir"]) / "manifest.json").read_text())
    assert manifest["data"]["lists"]["cv2-s0-v1-f1-train"]["derived_from"] == "train v1"
    assert read_history(small_digits).current()["train"].version == 1  # fold lists are not versions


def test_running_it_again_continues_and_a_different_one_under_the_name_is_refused(tiny_network, small_digits):
    first = crossval(options(tiny_network, small_digits, "epochs=2"))
    stamps = [(run / "manifest.json").stat().st_mtime_ns for run in first.runs]
    again = crossval(options(tiny_network, small_digits, "epochs=2"))
    assert again.runs == first.runs and [(r / "manifest.json").stat().st_mtime_ns for r in again.runs] == stamps
    with pytest.raises(UserError, match="holds another cross-validation \\(config differ"):
        crossval(options(tiny_network, small_digits, "epochs=3", name=first.folder.name))
    with pytest.raises(UserError, match=r"fewer images than --folds 30"):
        crossval(options(tiny_network, small_digits, "epochs=2", folds=30))
    assert run_main(command_main("crossval"), ["--folds", "1"]) == 2


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if "raw" not in p.parts)


def test_crossval_refused_for_its_folds_or_its_name_writes_nothing(tiny_network, small_digits):
    crossval_root = Path(os.environ["IMAGEPIPE_OUTPUT"]) / "crossval"
    before = listing(small_digits)
    with pytest.raises(UserError, match=r"fewer images than --folds 1000"):
        crossval(options(tiny_network, small_digits, "epochs=2", folds=1000))
    assert listing(small_digits) == before and not crossval_root.exists()
    other = crossval_root / "cvq"  # holds a 2-fold cross-validation of another list
    other.mkdir(parents=True)
    (other / "plan.json").write_text(json.dumps({"folds": 2, "list_sha256": "0" * 64}))
    with pytest.raises(UserError, match=r"cvq holds another cross-validation"):
        crossval(options(tiny_network, small_digits, "epochs=2", folds=3, name="cvq"))
    assert listing(small_digits) == before and sorted(p.name for p in other.iterdir()) == ["plan.json"]


def test_a_killed_cross_validation_resumes_its_unfinished_fold(tiny_network, small_digits):
    argv = ["--folds", "2", "--no-progress", "--device", "cpu", f"network={tiny_network}",
            f"data.dataset={small_digits}", "epochs=8", "batch_size=32", "optim.lr=0.01"]
    process = subprocess.Popen(command_line("crossval", *argv), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    output = Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        second = list(output.glob("small-cv2-s0-v1-f2-*/metrics.csv"))
        if second and len(read_text(second[0]).splitlines()) >= 3:  # fold 2 has finished two epochs
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    (first,) = output.glob("small-cv2-s0-v1-f1-*")
    done = (first / "manifest.json").read_bytes()
    result = run_main(command_main("crossval"), argv)
    assert result == 0 and (first / "manifest.json").read_bytes() == done  # the finished fold is skipped
    (second,) = output.glob("small-cv2-s0-v1-f2-*")  # resumed in its own folder, not started again
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1
    assert len(read_results(output.parent / "crossval" / "small-cv2-s0-v1" / "predictions.csv")[0].paths) == 200

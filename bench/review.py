"""The data loop on injected noise: does review find flipped labels and planted copies, and does cleaning help?

Everything runs in a temporary folder (data, runs, reviews), with a small CNN at the
digits' native 8x8 (:data:`NETWORK`), on the CPU.

1. **Label errors**: the bundled digits with the labels of a seeded 5% of the ``train``
   list flipped to another class (a hand edit of the list, recorded as its version 2).
   ``crossval`` (5 folds) gives out-of-fold probabilities, ``review`` flags label
   issues; printed: precision and recall of the flipped images among the flagged ones
   (targets: recall at least 0.8 at precision at least 0.8).
2. **Cleaning**: the review's suggestions for label issues are accepted and applied
   (``prepare-data apply``); three models are trained with the same seed, on the clean
   digits, the noisy lists and the cleaned lists, and their test accuracy printed side
   by side with 95% Wilson intervals (target: the cleaned model's accuracy within its
   interval of the clean model's: the clean model's accuracy lies inside the cleaned
   model's 95% interval, so cleaning recovered what the noise cost, up to what the test
   list can tell apart).
3. **Near-duplicates**: the digits written at 32x32 (bicubic; at 8x8 a JPEG copy is not
   a copy), and a JPEG (quality 70) copy, resized by 10% (alternately down and up), of
   50 seeded test images planted in ``train``; printed: how many copies ``review``
   finds as leaks of their test image (target: all), and how many other duplicate
   findings it reports among the 1,797 original images.

``--rounds`` is the number of noise seeds (each round flips other images). ``--quick``
uses 3 folds, 3 epochs and one round: it checks that the benchmark runs, its figures
mean nothing.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.digits import prepare_digits
from common.files import atomic_write_text, read_text
from common.lists import load_dataset, read_split
from evaluate.uncertainty import wilson_interval

NETWORK = """\
version: 1
arch: {name: small_cnn, params: {channels: [16, 32], dropout: 0.1}}
num_classes: 10
input: {color_mode: L, height: 8, width: 8, interpolation: bilinear, mean: [0.3], std: [0.4]}
"""
"""A small CNN at the digits' native size: 5 folds and three models train in minutes on a CPU."""

NOISE = 0.05
PLANTED = 50
TARGET_PRECISION = TARGET_RECALL = 0.8


@dataclass(frozen=True)
class Settings:
    """The benchmark's size."""

    folds: int = 5
    epochs: int = 20
    rounds: int = 1


def main(rounds: int, quick: bool = False) -> int:
    """Run the benchmark and print its figures; 0 when every target is met."""
    settings = Settings(3, 3, 1) if quick else Settings(rounds=max(1, rounds))
    with isolated() as base:
        network = base / "bench_review.yaml"
        network.write_text(NETWORK)
        print(f"training logs: {base / 'train.log'} (removed at the end)", flush=True)
        with open(base / "train.log", "w", encoding="utf-8") as log, redirect_stdout(log):  # the runs' console
            rows = [label_round(base, network, seed, settings) for seed in range(settings.rounds)]
            copies = near_duplicates(base)
    ok = print_labels(rows, settings)
    ok &= print_copies(copies)
    if quick:
        print("(--quick: 3 folds, 3 epochs, one round: the figures above only show that the benchmark runs)")
    return 0 if ok else 1


@contextmanager
def isolated() -> Iterator[Path]:
    """A temporary folder holding data/, model/ and output/ for the benchmark's duration."""
    names = ("IMAGEPIPE_DATA", "IMAGEPIPE_MODEL", "IMAGEPIPE_OUTPUT")
    previous = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-review-") as folder:
        for name in names:
            os.environ[name] = str(Path(folder) / name.split("_")[1].lower())
        try:
            yield Path(folder)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def flip_labels(root: Path, fraction: float, seed: int) -> set[str]:
    """Give a seeded ``fraction`` of the train list's images another class (dev follows); returns their paths."""
    dataset = load_dataset(root)
    samples = read_split(dataset, "train")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(samples), size=round(fraction * len(samples)), replace=False)
    new = {samples[i].path: int((samples[i].label + rng.integers(1, dataset.num_classes)) % dataset.num_classes)
           for i in chosen}
    for split in ("train", "dev"):
        lines = []
        for line in read_text(dataset.list_path(split)).splitlines():
            path = line.rsplit(maxsplit=1)[0]
            lines.append(f"{path} {new[path]}" if path in new else line)
        atomic_write_text(dataset.list_path(split), "\n".join(lines) + "\n")
    return set(new)


def label_round(base: Path, network: Path, seed: int, settings: Settings) -> dict:
    """One noise seed: flip, cross-validate, review, clean; train clean, noisy and cleaned models; their figures."""
    from datatools.apply import apply_decisions
    from datatools.review import ReviewOptions, review_dataset
    from datatools.review.decisions import DECISIONS, accept_suggestions
    from train.experiments.crossval import CrossvalOptions, crossval

    clean = prepare_digits(base / "data" / f"clean-{seed}").root
    noisy = prepare_digits(base / "data" / f"noisy-{seed}").root
    flipped = flip_labels(noisy, NOISE, seed)
    overrides = (f"network={network}", f"data.dataset={noisy}", f"epochs={settings.epochs}", "batch_size=32",
                 "optim.lr=0.01", "checkpoint.monitor=val/loss", "checkpoint.mode=min")
    folds = crossval(CrossvalOptions(None, overrides, settings.folds, 0, f"noise-{seed}", "cpu", False))
    review = review_dataset(ReviewOptions(str(noisy), (folds.folder,)))
    flagged = {f.path for f in review.findings if f.kind == "label_issue"}
    hits = len(flagged & flipped)
    noisy_accuracy = test_accuracy(noisy, overrides, f"noisy-{seed}")
    accept_suggestions(review.folder / DECISIONS, ("label_issue",))
    apply_decisions(review.folder / DECISIONS)
    return {"seed": seed, "flipped": len(flipped), "flagged": len(flagged), "hits": hits,
            "precision": hits / len(flagged) if flagged else 0.0, "recall": hits / len(flipped),
            "oof_accuracy": folds.accuracy,
            "clean": test_accuracy(clean, (*overrides[:1], f"data.dataset={clean}", *overrides[2:]), f"clean-{seed}"),
            "noisy": noisy_accuracy, "cleaned": test_accuracy(noisy, overrides, f"cleaned-{seed}")}


def test_accuracy(root: Path, overrides: tuple[str, ...], name: str) -> tuple[int, int]:
    """Train one model (seed 0) on a data set's current lists; ``(correct, total)`` on its test list."""
    from common.run_folder import RunFolder
    from train.config import load_train_config
    from train.experiments.crossval import CrossvalOptions, predict_holdout
    from train.run import RunOptions, train

    loaded = load_train_config(overrides=list(overrides))
    result = train(loaded, RunOptions(name=name, device="cpu", progress=False))
    dataset = load_dataset(root)
    paths, probabilities, _ = predict_holdout(RunFolder(result.run_dir), dataset, "test", loaded,
                                              CrossvalOptions(device="cpu"))
    labels = {s.path: s.label for s in read_split(dataset, "test")}
    correct = int(sum(labels[p] == int(row.argmax()) for p, row in zip(paths, probabilities)))
    return correct, len(paths)


def near_duplicates(base: Path) -> dict:
    """Plant re-encoded copies of test images in train (digits at 32x32); what review finds."""
    from datatools.review import ReviewOptions, review_dataset

    root = prepare_digits(base / "data" / "digits32").root
    for path in (root / "raw").rglob("*.png"):
        with Image.open(path) as image:
            image.resize((32, 32), Image.Resampling.BICUBIC).save(path)
    dataset = load_dataset(root)
    test = read_split(dataset, "test")
    rng = np.random.default_rng(0)
    planted = {}
    for rank, index in enumerate(rng.choice(len(test), size=PLANTED, replace=False)):
        original = test[index]
        side = 29 if rank % 2 else 35  # 32 resized by 10%, down or up
        buffer = io.BytesIO()
        with Image.open(root / original.path) as image:
            image.resize((side, side), Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=70)
        copy = f"raw/planted/{Path(original.path).stem}.jpg"
        (root / copy).parent.mkdir(parents=True, exist_ok=True)
        (root / copy).write_bytes(buffer.getvalue())
        planted[copy] = (original.path, original.label)
    train_list = dataset.list_path("train")
    atomic_write_text(train_list, read_text(train_list) + "".join(f"{c} {label}\n" for c, (_, label) in
                                                                  planted.items()))
    findings = review_dataset(ReviewOptions(str(root))).findings
    found = {f.path for f in findings if f.kind == "cross_split_duplicate" and planted.get(f.path, ("",))[0]
             == f.duplicate_of}
    others = [f for f in findings if f.kind in ("cross_split_duplicate", "duplicate") and f.path not in planted
              and f.duplicate_of not in planted]
    return {"planted": len(planted), "found": len(found), "others": len(others)}


def interval(correct: int, total: int) -> str:
    low, high = wilson_interval(correct, total)
    return f"{correct / total:.4f} [{low:.4f}-{high:.4f}]"


def print_labels(rows: list[dict], settings: Settings) -> bool:
    """The label-noise table; whether its targets are met."""
    print(f"label errors: {NOISE:.0%} of the digits' train labels flipped; {settings.folds}-fold cross-validation, "
          f"{settings.epochs} epochs, small CNN; review's label issues")
    print(f"{'seed':>4} {'flipped':>8} {'flagged':>8} {'found':>6} {'precision':>10} {'recall':>8} {'oof acc':>8}   "
          f"{'test accuracy (95% interval): clean':<38}{'noisy':<28}{'cleaned':<28}{'clean in cleaned interval'}")
    ok = True
    for row in rows:
        low, high = wilson_interval(*row["cleaned"])
        inside = low <= row["clean"][0] / row["clean"][1] <= high
        ok &= row["precision"] >= TARGET_PRECISION and row["recall"] >= TARGET_RECALL and inside
        print(f"{row['seed']:>4} {row['flipped']:>8} {row['flagged']:>8} {row['hits']:>6} {row['precision']:>10.3f} "
              f"{row['recall']:>8.3f} {row['oof_accuracy']:>8.4f}   {interval(*row['clean']):<38}"
              f"{interval(*row['noisy']):<28}{interval(*row['cleaned']):<28}{'yes' if inside else 'no'}")
    print(f"targets: recall >= {TARGET_RECALL} at precision >= {TARGET_PRECISION}; the cleaned model's accuracy "
          f"within its interval of the clean model's: {'met' if ok else 'NOT met'}")
    return ok


def print_copies(copies: dict) -> bool:
    """The near-duplicate line; whether every planted copy was found."""
    ok = copies["found"] == copies["planted"]
    print(f"near-duplicates: {copies['planted']} JPEG (quality 70) copies of test images, resized by 10%, planted in "
          f"train: {copies['found']} found as leaks of their test image (target: all: {'met' if ok else 'NOT met'}); "
          f"{copies['others']} other duplicate finding(s) among the 1797 original images")
    return ok

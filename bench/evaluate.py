"""Evaluation-stage speed, measured side by side in one run.

1. Inference: the stage's batched onnxruntime path against a bare session loop over
   the same pre-decoded arrays (target: at least 0.9 of the bare loop's images/s).
2. Scoring 10^4, 10^5 and 10^6 predictions (10 classes): ``evaluate.scoring.score``
   of the figures in ``TIMED_FIGURES`` against calling scikit-learn's functions for
   them (accuracy, top-k, per-class precision/recall/F1/support, confusion matrix,
   per-class, macro and micro AP, per-class PR curves; balanced accuracy is computed on
   our side only, from the confusion counts, and checked against scikit-learn outside
   the timing); the numbers are checked equal to 1e-9 (targets at 10^6: at most 0.3 of
   scikit-learn's time, and at most 2.5 s). Calibration, which scikit-learn's side
   does not compute, is left out, as it always was.
3. The bootstrap intervals of every bootstrapped figure (per-class and macro F1 and
   AP, balanced accuracy), timed on their own (``evaluate.scoring.with_intervals``):
   1,000 resamples of 10^5 predictions (target: at most 5 s).
4. ``pipenv run evaluate --help`` start-up time (target: under 0.5 s).

The model is the newest in ``model/``; without one (and with torch installed) a
freshly initialised digits_cnn is exported to a temporary folder: speed does not
depend on the weights.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.digits import ensure_digits, open_dataset_or_digits
from common.errors import UserError
from common.images import load_samples
from common.lists import read_split
from common.paths import PROJECT_ROOT

TIMED_FIGURES = ("accuracy", "top_k_accuracy", "precision", "recall", "f1", "ap", "operating_points",
                 "balanced_accuracy")
"""The figures the scoring benchmark computes: those scikit-learn's side is timed for, and balanced accuracy."""


def main(rounds: int) -> int:
    """Measure and print; returns 0 when every target is met, 1 otherwise."""
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        ok &= _inference(_model(Path(tmp)), rounds)
    ok &= _scoring(max(3, rounds // 2))
    ok &= _bootstrap(3)
    ok &= _startup(rounds)
    return 0 if ok else 1


def _model(folder: Path) -> Path:
    from evaluate.evaluation import newest_model

    try:
        return newest_model()
    except UserError:
        try:
            import torch

            from deploy.graph import ExportedClassifier, to_onnx
            from networks import build_network, load_network_config
        except ImportError:
            raise UserError("no model in model/ and no torch to make one: copy an exported model there") from None
        from common.integrity import record_sha256
        from common.model_card import ModelCard
        from deploy.card import card_network, write_card

        torch.manual_seed(0)
        config = load_network_config("digits_cnn")
        path = folder / "digits_cnn.onnx"
        to_onnx(ExportedClassifier(build_network(config).eval()).eval(), path)
        card = ModelCard(name="bench", created="", class_names=tuple(str(d) for d in range(10)),
                         contract=config.input, network=card_network(config))
        write_card(path, card, folder / "digits_cnn.json")
        record_sha256(path)
        return path


def _inference(model_path: Path, rounds: int) -> bool:
    from common.onnx_model import open_model, predict_batches
    from evaluate.evaluation import with_progress

    ensure_digits()
    model = open_model(model_path)
    dataset = open_dataset_or_digits("digits")
    images, _, _ = load_samples(dataset, read_split(dataset, "test"), model.contract)
    images = np.concatenate([images] * 12)  # 4320 images
    batches = [images[i:i + 256] for i in range(0, len(images), 256)]
    session = model.session

    def bare() -> float:
        started = time.perf_counter()
        for batch in batches:
            session.run(["probabilities"], {"images": batch})
        return len(images) / (time.perf_counter() - started)

    def stage() -> float:
        started = time.perf_counter()
        predict_batches(model, with_progress(iter(batches), len(images), enabled=False))
        return len(images) / (time.perf_counter() - started)

    bare(), stage()
    bare_runs, stage_runs = [], []
    for _ in range(rounds):
        bare_runs.append(bare())
        stage_runs.append(stage())
    ratio = statistics.median(stage_runs) / statistics.median(bare_runs)
    print(f"inference, {model_path.name}, {len(images)} pre-decoded images, batch 256, {rounds} alternating rounds")
    print(f"  bare onnxruntime loop    {statistics.median(bare_runs):10.0f} img/s")
    print(f"  evaluate stage           {statistics.median(stage_runs):10.0f} img/s")
    print(f"  ratio stage / bare       {ratio:10.3f}   (target >= 0.9)")
    return ratio >= 0.9


def _scoring(rounds: int) -> bool:
    from sklearn import metrics as reference

    from evaluate.scoring import score

    print(f"scoring 10 classes, median of {rounds} alternating rounds")
    print(f"  {'predictions':>12} {'evaluate s':>11} {'scikit-learn s':>15} {'ratio':>7}")
    ok = True
    for count in (10**4, 10**5, 10**6):
        rng = np.random.default_rng(count)
        labels = rng.integers(0, 10, count)
        probabilities = rng.dirichlet(np.ones(10), count).astype(np.float32)
        ours, theirs = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            result = score(labels, probabilities, [str(c) for c in range(10)], figures=TIMED_FIGURES)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            expected = _sklearn_figures(reference, labels, probabilities)
            theirs.append(time.perf_counter() - started)
        expected["balanced_accuracy"] = reference.balanced_accuracy_score(labels, probabilities.argmax(axis=1))
        _check_equal(result, expected)
        ratio = statistics.median(ours) / statistics.median(theirs)
        target = "   (targets <= 2.5 s, ratio <= 0.3)" if count == 10**6 else ""
        print(f"  {count:>12,} {statistics.median(ours):11.3f} {statistics.median(theirs):15.3f} {ratio:7.2f}{target}")
        if count == 10**6:
            ok = ratio <= 0.3 and statistics.median(ours) <= 2.5
    return ok


def _bootstrap(rounds: int) -> bool:
    from evaluate.scoring import score, with_intervals

    count, resamples = 10**5, 1000
    rng = np.random.default_rng(count)
    labels = rng.integers(0, 10, count)
    probabilities = rng.dirichlet(np.ones(10), count).astype(np.float32)
    scores = score(labels, probabilities, [str(c) for c in range(10)])
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with_intervals(scores, resamples, seed=0)
        times.append(time.perf_counter() - started)
    print(f"bootstrap intervals (per-class and macro F1 and AP, balanced accuracy), {resamples:,} resamples of "
          f"{count:,} predictions, median of {rounds}: {statistics.median(times):.2f} s (target <= 5 s)")
    return statistics.median(times) <= 5


def _sklearn_figures(reference, labels: np.ndarray, probabilities: np.ndarray) -> dict:
    classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(classes, dtype=bool)[labels]
    out = {
        "accuracy": reference.accuracy_score(labels, predicted),
        # scikit-learn ranks the larger class index first on ties, evaluate the lower: reverse the classes
        "top_k": {k: reference.top_k_accuracy_score(classes - 1 - labels, probabilities[:, ::-1], k=k,
                                                    labels=range(classes)) for k in (2, 3, 5)},
        "prfs": reference.precision_recall_fscore_support(labels, predicted, labels=range(classes), zero_division=0),
        "confusion": reference.confusion_matrix(labels, predicted, labels=range(classes)),
        "ap": reference.average_precision_score(onehot, probabilities, average=None),
        "macro_ap": reference.average_precision_score(onehot, probabilities, average="macro"),
        "micro_ap": reference.average_precision_score(onehot, probabilities, average="micro"),
    }
    out["curves"] = [reference.precision_recall_curve(onehot[:, c], probabilities[:, c]) for c in range(classes)]
    return out


def _check_equal(result, expected: dict, tolerance: float = 1e-9) -> None:
    """Every figure equal to scikit-learn's: metrics, confusion matrix and each class's PR curve."""
    from evaluate.scoring import metrics_json

    metrics = metrics_json(result)
    assert abs(metrics["accuracy"] - expected["accuracy"]) < tolerance
    for k, value in expected["top_k"].items():
        assert abs(metrics["top_k_accuracy"][str(k)] - value) < tolerance
    for c, row in enumerate(metrics["per_class"]):
        assert np.allclose([row["precision"], row["recall"], row["f1"], row["ap"]],
                           [*(expected["prfs"][i][c] for i in range(3)), expected["ap"][c]], rtol=0, atol=tolerance)
        precision, recall, thresholds = expected["curves"][c]
        curve = result.curves[row["class"]]
        assert np.allclose(curve.precision, precision, rtol=0, atol=tolerance)
        assert np.allclose(curve.recall, recall, rtol=0, atol=tolerance)
        assert np.array_equal(curve.thresholds, thresholds)
    assert np.array_equal(result.confusion, expected["confusion"])
    assert abs(metrics["macro"]["ap"] - expected["macro_ap"]) < tolerance
    assert abs(metrics["micro"]["ap"] - expected["micro_ap"]) < tolerance
    assert abs(metrics["balanced_accuracy"] - expected["balanced_accuracy"]) < tolerance


def _startup(rounds: int) -> bool:
    def timed(args: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, check=True)
        return time.perf_counter() - started

    bare = statistics.median(timed(["-c", "pass"]) for _ in range(rounds))
    helped = statistics.median(timed(["-m", "evaluate", "--help"]) for _ in range(rounds))
    print(f"start-up, median of {rounds}: python -c pass {bare:.3f} s, evaluate --help {helped:.3f} s "
          "(target < 0.5 s)")
    return helped < 0.5

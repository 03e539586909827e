"""Balanced accuracy against scikit-learn: the figure, every bootstrap resample, the paired test, every output."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as reference

from evaluate.figures import build_figures
from evaluate.figures.balanced_accuracy import BalancedAccuracy
from evaluate.scoring import draws, gather_evidence, score
from evaluate.uncertainty import resample_counts
from evaluate.verdict import verdict
from tests.evaluate.test_figures import NAMES, rendered, two_models
from tests.evaluate.test_metrics import predictions


def sklearn_balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """scikit-learn's figure; it warns when a predicted class has no true sample, and leaves that class out."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return reference.balanced_accuracy_score(labels, predicted)


def on_resamples(labels: np.ndarray, probabilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """scikit-learn's balanced accuracy of each resample, by expanding it into its images."""
    out = []
    for column in counts.T:
        images = np.repeat(np.arange(len(labels)), column.astype(int))
        out.append(sklearn_balanced_accuracy(labels[images], probabilities[images].argmax(axis=1)))
    return np.array(out)


@pytest.mark.parametrize(("count", "classes", "decimals"), [(2000, 10, None), (500, 4, 2), (300, 3, 1), (40, 6, None)])
def test_balanced_accuracy_is_scikit_learns(count, classes, decimals):
    labels, probabilities = predictions(count, classes, seed=count, decimals=decimals)
    labels[labels == classes - 1] = 0  # a class without samples, which the model still predicts
    probabilities[:5, classes - 1] = 1.0
    predicted = probabilities.argmax(axis=1)
    assert (predicted == classes - 1).any() and not (labels == classes - 1).any()
    scores = score(labels, probabilities, [f"c{c}" for c in range(classes)])
    value = scores.get(BalancedAccuracy).value
    assert value == pytest.approx(sklearn_balanced_accuracy(labels, predicted), abs=1e-12)
    # the mean recall over the classes with samples: the macro recall, not the mean over every class
    assert value == pytest.approx(scores.get("recall").averages.macro, abs=1e-12)
    assert value != pytest.approx(scores.get("recall").averages.macro_all_classes, abs=1e-6)


def test_a_model_that_neglects_a_rare_class_is_found_out():
    labels = np.r_[np.zeros(95, dtype=np.int64), np.ones(5, dtype=np.int64)]
    probabilities = np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (100, 1))  # always class 0
    value = score(labels, probabilities, ["common", "rare"]).get(BalancedAccuracy).value
    assert value == 0.5 == sklearn_balanced_accuracy(labels, probabilities.argmax(axis=1))
    assert float(np.mean(probabilities.argmax(axis=1) == labels)) == 0.95


@pytest.mark.parametrize(("count", "classes", "decimals"), [(300, 4, 2), (150, 3, 1), (400, 5, None)])
def test_every_resample_is_scored_as_scikit_learn_scores_it(count, classes, decimals):
    labels, probabilities = predictions(count, classes, seed=count, decimals=decimals)
    labels[labels == classes - 1] = 0  # a class without samples
    labels[2:][labels[2:] == classes - 2] = 0
    labels[:2] = classes - 2  # a rare class, absent from some resamples (then left out of that resample's mean)
    evidence = gather_evidence(labels, probabilities, [f"c{c}" for c in range(classes)])
    drawn = draws([evidence], build_figures(["balanced_accuracy"]), 60, seed=3)[0]["balanced_accuracy"]
    counts = np.concatenate(list(resample_counts(count, 60, seed=3)), axis=1)
    assert (counts[:2].sum(axis=0) == 0).any()  # the rare class really is missing from a resample
    expected = on_resamples(labels, probabilities, counts)
    np.testing.assert_allclose(drawn.value, expected, atol=1e-12)
    assert drawn.per_class is None


def test_the_interval_and_the_paired_test_come_from_the_same_resamples_as_scikit_learns():
    labels, a, b = two_models(300, seed=9)
    out = rendered(labels, a, b, resamples=80)
    counts = np.concatenate(list(resample_counts(len(labels), 80, seed=0)), axis=1)
    on_a, on_b = on_resamples(labels, a, counts), on_resamples(labels, b, counts)
    np.testing.assert_allclose(out["metrics"]["balanced_accuracy_interval"], np.percentile(on_a, [2.5, 97.5]),
                               atol=1e-12)
    test = out["compare"]["verdict"]["balanced_accuracy"]
    np.testing.assert_allclose(test["interval"], np.percentile(on_b - on_a, [2.5, 97.5]), atol=1e-12)
    assert test["differs"] and test["interval"][0] > 0
    same = verdict(score(labels, a, NAMES), score(labels, a, NAMES), 50, seed=0).to_json()["balanced_accuracy"]
    assert same["interval"] == [0.0, 0.0] and not same["differs"]


def test_balanced_accuracy_is_in_every_output():
    labels, a, b = two_models()
    out = rendered(labels, a, b)
    value = sklearn_balanced_accuracy(labels, a.argmax(axis=1))
    metrics, summary = out["metrics"], out["compare"]
    assert metrics["balanced_accuracy"] == pytest.approx(value, abs=1e-12)
    low, high = metrics["balanced_accuracy_interval"]
    assert low < value < high
    text = out["result.txt"]
    assert f"balanced accuracy: {value:.4f} [{low:.3f}, {high:.3f}] (95%, bootstrap)" in text
    assert f"Balanced accuracy {value:.1%} (the mean recall per class; 95% interval {low:.1%} to {high:.1%}" in text
    assert text.index("Balanced accuracy ") < text.index("\n")  # in the headline's opening line
    assert "F1, AP and balanced accuracy: percentile bootstrap, 200 resamples" in text
    html = out["report.html"]
    assert f"<td class=\"name\">balanced accuracy</td><td>{value:.4f} [{low:.3f}, {high:.3f}]</td>" in html
    assert "Balanced accuracy = the mean recall over the classes with test samples" in html
    value_b = sklearn_balanced_accuracy(labels, b.argmax(axis=1))
    assert summary["deltas"]["balanced_accuracy"] == pytest.approx(
        {"a": value, "b": value_b, "delta": value_b - value}, abs=1e-12)
    assert summary["verdict"]["balanced_accuracy"]["delta"] == pytest.approx(value_b - value, abs=1e-12)
    assert "Balanced accuracy (better)" in summary["sentences"][0]
    assert any(s.startswith(f"Balanced accuracy: B - A = {value_b - value:+.4f}, 95% interval [")
               for s in summary["sentences"])
    assert f"balanced_accuracy   {value:>10.4f}{value_b:>10.4f}" in out["compare.txt"]


def test_without_a_bootstrap_there_is_no_interval_and_no_verdict():
    labels, a, b = two_models(100)
    out = rendered(labels, a, b, resamples=0)
    assert "balanced_accuracy" in out["metrics"] and "balanced_accuracy_interval" not in out["metrics"]
    assert "balanced accuracy: " in out["result.txt"] and "(95%, bootstrap)" not in out["result.txt"]
    assert "balanced_accuracy" not in out["compare"]["verdict"]
    assert out["compare"]["sentences"][-1] == ("Macro F1, Macro AP and Balanced accuracy: no paired bootstrap "
                                               "(--bootstrap 0), so no verdict.")

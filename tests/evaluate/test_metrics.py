"""Metrics agree with scikit-learn's reference functions, on random and on tied scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as reference

from evaluate.metrics import binary_curve, operating_points, score


def predictions(count: int, classes: int, seed: int, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes))
    logits[np.arange(count), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:
        probabilities = np.round(probabilities, decimals)  # many ties
    return labels, probabilities.astype(np.float32)


@pytest.mark.parametrize(("count", "classes", "decimals"), [(2000, 10, None), (500, 4, 2), (300, 3, 1)])
def test_every_figure_matches_scikit_learn(count, classes, decimals):
    labels, probabilities = predictions(count, classes, seed=count, decimals=decimals)
    names = [f"c{i}" for i in range(classes)]
    result = score(labels, probabilities, names)
    m = result.metrics
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(classes)[labels]
    assert m["accuracy"] == pytest.approx(reference.accuracy_score(labels, predicted), abs=1e-15)
    for k, value in m["top_k_accuracy"].items():
        if int(k) < classes:
            assert value == pytest.approx(reference.top_k_accuracy_score(labels, probabilities, k=int(k),
                                                                         labels=range(classes)), abs=1e-15)
    p, r, f, s = reference.precision_recall_fscore_support(labels, predicted, labels=range(classes), zero_division=0)
    ap = reference.average_precision_score(onehot, probabilities, average=None)
    for c, row in enumerate(m["per_class"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[c], r[c], f[c], s[c]),
                                                                                              abs=1e-12)
        assert row["ap"] == pytest.approx(ap[c], abs=1e-12)
        precision, recall, thresholds = reference.precision_recall_curve(labels == c, probabilities[:, c])
        curve = result.curves[names[c]]
        np.testing.assert_allclose(curve.precision, precision, atol=1e-12)
        np.testing.assert_allclose(curve.recall, recall, atol=1e-12)
        np.testing.assert_array_equal(curve.thresholds, thresholds)
    for average in ("macro", "weighted", "micro"):
        assert m[average]["f1"] == pytest.approx(reference.f1_score(labels, predicted, average=average), abs=1e-12)
        assert m[average]["precision"] == pytest.approx(
            reference.precision_score(labels, predicted, average=average, zero_division=0), abs=1e-12)
        assert m[average]["recall"] == pytest.approx(reference.recall_score(labels, predicted, average=average),
                                                     abs=1e-12)
        assert m[average]["ap"] == pytest.approx(reference.average_precision_score(onehot, probabilities,
                                                                                   average=average), abs=1e-12)
    np.testing.assert_array_equal(result.confusion, reference.confusion_matrix(labels, predicted,
                                                                               labels=range(classes)))


def test_a_class_without_samples_counts_as_scikit_learn_does():
    labels = np.array([0, 0, 1, 1, 0])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3],
                              [0.3, 0.3, 0.4]], dtype=np.float32)
    m = score(labels, probabilities, ["a", "b", "c"]).metrics
    assert m["classes_without_samples"] == ["c"]
    assert m["per_class"][2]["ap"] == 0.0 and m["per_class"][2]["precision"] == 0.0
    assert m["macro"]["f1"] == pytest.approx(reference.f1_score(labels, probabilities.argmax(1), average="macro",
                                                                labels=[0, 1, 2], zero_division=0))


def test_operating_points_are_the_best_thresholds_found_by_brute_force():
    labels, probabilities = predictions(400, 3, seed=7, decimals=2)
    positive, scores = labels == 1, probabilities[:, 1].astype(np.float64)
    curve = binary_curve(positive, probabilities[:, 1])
    points = operating_points(curve, [0.9], [0.8])
    candidates = np.unique(scores)
    stats = [(t, positive[scores >= t].mean(), positive[scores >= t].sum() / positive.sum()) for t in candidates]
    best_at_precision = max((s for s in stats if s[1] >= 0.9), key=lambda s: (s[2], -s[0]))
    best_at_recall = max((s for s in stats if s[2] >= 0.8), key=lambda s: (s[1], s[0]))
    got = points["precision"]["0.9"]
    assert got["threshold"] == pytest.approx(best_at_precision[0]) and got["recall"] == pytest.approx(best_at_precision[2])
    got = points["recall"]["0.8"]
    assert got["threshold"] == pytest.approx(best_at_recall[0]) and got["precision"] == pytest.approx(best_at_recall[1])
    assert operating_points(curve, [1.01], [])["precision"]["1.01"] is None


def test_macro_curve_averages_the_interpolated_precision():
    labels, probabilities = predictions(300, 3, seed=3)
    result = score(labels, probabilities, ["a", "b", "c"])
    macro = result.curves["macro"]
    assert len(macro.recall) == 101 and macro.recall[0] == 1.0 and macro.recall[-1] == 0.0
    assert np.all(np.diff(macro.precision) >= -1e-12)  # interpolated precision never falls as recall falls

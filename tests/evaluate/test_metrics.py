"""Metrics agree with scikit-learn's reference functions, on random and on tied scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as reference

from evaluate.metrics import (
    average_precision,
    binary_curve,
    corner_curve,
    interpolated_precision,
    operating_points,
)
from evaluate.scoring import metrics_json, score


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
    m = metrics_json(result)
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(classes)[labels]
    assert m["accuracy"] == pytest.approx(reference.accuracy_score(labels, predicted), abs=1e-15)
    for k, value in m["top_k_accuracy"].items():
        if int(k) < classes:
            assert value == pytest.approx(reference_top_k(labels, probabilities, int(k)), abs=1e-15)
    assert m["top_k_accuracy"]["1"] == m["accuracy"]  # one tie rule for both
    wilson = binomtest(int(round(m["accuracy"] * count)), count).proportion_ci(0.95, method="wilson")
    assert m["accuracy_interval"] == pytest.approx([wilson.low, wilson.high], abs=1e-12)
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


def reference_top_k(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """scikit-learn's top-k with our tie rule: it ranks the larger index first on ties, so reverse the classes."""
    classes = probabilities.shape[1]
    return reference.top_k_accuracy_score(classes - 1 - labels, probabilities[:, ::-1], k=k, labels=range(classes))


def test_ties_rank_the_lower_class_first_everywhere():
    labels = np.array([1, 0, 2, 2, 1, 0])
    probabilities = np.array([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25],
                              [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]], dtype=np.float32)
    m = metrics_json(score(labels, probabilities, ["a", "b", "c"]))
    # by hand: ties go to the lower index, so rows 1, 2, 4 and 5 are right; row 0 (a tie of 0 and 1) is wrong
    assert m["accuracy"] == m["top_k_accuracy"]["1"] == 4 / 6
    # top-2 misses only row 3, where class 2 ties class 1 for second place and ranks after it
    assert m["top_k_accuracy"]["2"] == pytest.approx(reference_top_k(labels, probabilities, 2)) == 5 / 6


def test_a_class_without_samples_is_left_out_of_macro_averages():
    labels = np.array([0, 0, 1, 1, 0])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3],
                              [0.3, 0.3, 0.4]], dtype=np.float32)
    m = metrics_json(score(labels, probabilities, ["a", "b", "c"]))
    predicted = probabilities.argmax(1)
    assert m["classes_without_samples"] == ["c"]
    assert m["per_class"][2]["ap"] == 0.0 and m["per_class"][2]["precision"] == 0.0
    assert m["per_class"][2]["operating_points"] is None and m["per_class"][0]["operating_points"] is not None
    for name, present in (("macro", [0, 1]), ("macro_all_classes", [0, 1, 2])):
        assert m[name]["f1"] == pytest.approx(reference.f1_score(labels, predicted, average="macro", labels=present,
                                                                 zero_division=0), abs=1e-12)
        assert m[name]["precision"] == pytest.approx(reference.precision_score(
            labels, predicted, average="macro", labels=present, zero_division=0), abs=1e-12)
    onehot = np.eye(3)[labels]
    assert m["macro"]["ap"] == pytest.approx(reference.average_precision_score(onehot[:, :2], probabilities[:, :2],
                                                                               average="macro"), abs=1e-12)
    assert m["macro"]["f1"] > m["macro_all_classes"]["f1"]


def test_largest_confusions_are_the_biggest_off_diagonal_cells():
    labels, probabilities = predictions(600, 5, seed=11)
    m = metrics_json(score(labels, probabilities, list("abcde")))
    matrix = reference.confusion_matrix(labels, probabilities.argmax(1))
    cells = sorted(((matrix[t, p], t, p) for t in range(5) for p in range(5) if t != p and matrix[t, p]),
                   key=lambda cell: (-cell[0], cell[1], cell[2]))
    assert [(row["count"], "abcde".index(row["true"]), "abcde".index(row["predicted"]))
            for row in m["largest_confusions"]] == [tuple(map(int, cell)) for cell in cells[:10]]
    assert all(row["support"] == matrix["abcde".index(row["true"])].sum() for row in m["largest_confusions"])


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_the_micro_curve_keeps_the_corners_of_the_full_curve(decimals):
    labels, probabilities = predictions(700, 4, seed=5, decimals=decimals)
    onehot = np.eye(4, dtype=bool)[labels].ravel()
    scores = probabilities.ravel()  # (N, K) -> (N*K,)
    full = binary_curve(onehot, scores)
    corners = corner_curve(np.sort(scores), np.sort(scores[onehot]))
    assert average_precision(corners) == pytest.approx(reference.average_precision_score(onehot, scores), abs=1e-12)
    np.testing.assert_allclose(interpolated_precision(corners), interpolated_precision(full), atol=1e-12)
    # every kept point is a point of the full curve ...
    index = np.searchsorted(full.thresholds, corners.thresholds)
    np.testing.assert_array_equal(full.thresholds[index], corners.thresholds)
    np.testing.assert_allclose(corners.precision[:-1], full.precision[index], atol=1e-12)
    np.testing.assert_allclose(corners.recall[:-1], full.recall[index], atol=1e-12)
    # ... and every dropped point lies on the vertical segment between two kept neighbours
    for point in np.setdiff1d(np.arange(len(full.thresholds)), index):
        above = index[np.searchsorted(index, point)]
        below = index[np.searchsorted(index, point) - 1]
        assert full.recall[below] == full.recall[point] == full.recall[above]
        assert full.precision[below] <= full.precision[point] <= full.precision[above]


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

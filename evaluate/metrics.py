"""Classification metrics from labels and class scores, in numpy alone.

Definitions (one-vs-rest for every per-class figure; they agree with scikit-learn's
functions, which the tests compare against):

- ``predicted`` is the arg-max of the scores (the first class on ties).
- accuracy: fraction of samples whose predicted class is the true class.
- top-k accuracy: the true class is among the k highest scores; on ties the class
  with the larger index ranks first (as ``sklearn.metrics.top_k_accuracy_score``).
- per class c: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their
  harmonic mean, 0 where a denominator is 0; support = number of true samples of c.
- AP (average precision) of class c: scores of class c ranked from high to low, with
  one point per distinct score; AP = sum over those points of (R_n - R_{n-1}) * P_n,
  the step-wise area under the precision-recall curve without interpolation
  (``sklearn.metrics.average_precision_score``). A class with no true sample has AP 0.
- macro: the unweighted mean over classes; weighted: the mean weighted by support;
  micro: pooled counts. For single-label data micro precision = micro recall = micro
  F1 = accuracy; micro AP ranks all (sample, class) pairs together.
- PR curves: per class the exact curve (one point per distinct score); the micro
  curve over all (sample, class) pairs; the macro curve is the mean over classes of
  the interpolated precision max{P(r') : r' >= r} on a grid of 101 recall values.
- operating points: for a target precision, the lowest threshold whose precision
  reaches it (so the highest recall at that precision); for a target recall, the
  highest threshold whose recall reaches it (so the highest precision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RECALL_GRID = np.linspace(0.0, 1.0, 101)


@dataclass
class Curve:
    """A precision-recall curve, recall decreasing, ending at recall 0 / precision 1.

    Attributes:
        precision: Precision per point.
        recall: Recall per point.
        thresholds: Score threshold per point (one fewer than the other two; the last
            point has no threshold).
    """

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass
class Scores:
    """Everything :func:`score` computes.

    Attributes:
        metrics: The JSON-ready figures (see module docstring).
        confusion: Counts, rows = true class, columns = predicted class.
        curves: PR curves per class name, plus ``micro`` and ``macro``.
        predicted: Predicted class per sample.
    """

    metrics: dict[str, Any]
    confusion: np.ndarray
    curves: dict[str, Curve] = field(default_factory=dict)
    predicted: np.ndarray | None = None


def binary_curve(positive: np.ndarray, scores: np.ndarray) -> Curve:
    """The precision-recall curve of one binary problem (the definition above).

    Args:
        positive: Boolean ``(N,)``: whether each sample is of the positive class.
        scores: Score of the positive class ``(N,)``.
    """
    order = np.argsort(scores)[::-1]  # tie order is irrelevant: only the ends of runs of equal scores count
    ranked = scores[order]
    hits = positive[order]
    # The last index of each run of equal scores: one point per distinct threshold.
    ends = np.flatnonzero(np.diff(ranked)) if len(ranked) > 1 else np.empty(0, dtype=np.int64)
    ends = np.r_[ends, len(ranked) - 1]
    tps = np.cumsum(hits, dtype=np.int64)[ends]
    fps = 1 + ends - tps
    predicted_positive = tps + fps
    precision = np.divide(tps, predicted_positive, out=np.zeros(len(tps)), where=predicted_positive != 0)
    total = tps[-1] if len(tps) else 0
    recall = tps / total if total > 0 else np.ones(len(tps))
    # Reverse to recall decreasing, and close the curve at recall 0, precision 1.
    return Curve(
        precision=np.r_[precision[::-1], 1.0],
        recall=np.r_[recall[::-1], 0.0],
        thresholds=ranked[ends][::-1],
    )


def average_precision(curve: Curve) -> float:
    """Step-wise area under a PR curve: sum of (R_n - R_{n-1}) * P_n."""
    return float(max(0.0, -np.sum(np.diff(curve.recall) * curve.precision[:-1])))


def interpolated_precision(curve: Curve, grid: np.ndarray = RECALL_GRID) -> np.ndarray:
    """max{precision at recall >= r} for each r in ``grid`` (0 beyond the curve's reach)."""
    # The curve is ordered by decreasing recall: a running maximum of precision from the
    # high-recall end gives, at each point, the best precision at that recall or more.
    envelope = np.maximum.accumulate(curve.precision)
    recall_ascending = curve.recall[::-1]
    envelope_ascending = envelope[::-1]
    index = np.searchsorted(recall_ascending, grid, side="left")
    out = np.zeros(len(grid))
    inside = index < len(recall_ascending)
    out[inside] = envelope_ascending[index[inside]]
    return out


def operating_points(curve: Curve, precision_targets: list[float], recall_targets: list[float]) -> dict[str, Any]:
    """Thresholds reaching each target precision and each target recall (see module docstring)."""
    points = curve.precision[:-1], curve.recall[:-1], curve.thresholds
    out: dict[str, Any] = {"precision": {}, "recall": {}}
    for target in precision_targets:
        ok = np.flatnonzero(points[0] >= target)
        if len(ok):
            best = ok[np.argmax(points[1][ok])]  # the highest recall, i.e. the lowest such threshold
            out["precision"][f"{target:g}"] = _point(points, best)
        else:
            out["precision"][f"{target:g}"] = None
    for target in recall_targets:
        ok = np.flatnonzero(points[1] >= target)
        out["recall"][f"{target:g}"] = _point(points, ok[np.argmax(points[2][ok])]) if len(ok) else None
    return out


def score(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
          precision_targets: tuple[float, ...] = (0.95, 0.99), recall_targets: tuple[float, ...] = (0.95,),
          top_k: tuple[int, ...] = (1, 2, 3, 5)) -> Scores:
    """All metrics of a labelled set of predictions.

    Args:
        labels: True class indices ``(N,)``.
        probabilities: Class scores ``(N, K)``.
        class_names: ``K`` names, index = label.
        precision_targets: Precisions to find operating points for.
        recall_targets: Recalls to find operating points for.
        top_k: Values of k for top-k accuracy (those above K are left out).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities)
    count, classes = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    # (K*K,) counts of (true, predicted) pairs -> (K, K), rows = true class
    confusion = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    predicted_count = confusion.sum(axis=0).astype(np.float64)
    precision = _safe_divide(tp, predicted_count)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    accuracy = float(tp.sum() / count)

    curves = {name: binary_curve(labels == c, probabilities[:, c]) for c, name in enumerate(class_names)}
    per_class = [{
        "class": name, "index": c, "support": int(support[c]), "precision": float(precision[c]),
        "recall": float(recall[c]), "f1": float(f1[c]), "ap": average_precision(curves[name]) if support[c] else 0.0,
        "operating_points": operating_points(curves[name], list(precision_targets), list(recall_targets)),
    } for c, name in enumerate(class_names)]
    onehot = np.zeros((count, classes), dtype=bool)
    onehot[np.arange(count), labels] = True
    curves["micro"] = binary_curve(onehot.ravel(), probabilities.ravel())  # (N, K) -> (N*K,) pairs
    macro_precision = np.mean([interpolated_precision(curves[name]) for name in class_names], axis=0)
    curves["macro"] = Curve(precision=macro_precision[::-1], recall=RECALL_GRID[::-1], thresholds=np.empty(0))

    ap = np.array([row["ap"] for row in per_class])
    rank = _true_class_rank(labels, probabilities)
    weights = support / support.sum()
    metrics = {
        "samples": int(count),
        "classes": list(class_names),
        "accuracy": accuracy,
        "top_k_accuracy": {str(k): float(np.mean(rank < k)) for k in top_k if k <= classes},
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean()),
                  "ap": float(ap.mean())},
        "weighted": {"precision": float(precision @ weights), "recall": float(recall @ weights),
                     "f1": float(f1 @ weights), "ap": float(ap @ weights)},
        "micro": {"precision": accuracy, "recall": accuracy, "f1": accuracy,
                  "ap": average_precision(curves["micro"])},
        "per_class": per_class,
        "classes_without_samples": [name for name, s in zip(class_names, support) if s == 0],
        "confusion_convention": "rows = true class, columns = predicted class",
    }
    return Scores(metrics=metrics, confusion=confusion, curves=curves, predicted=predicted)


def _true_class_rank(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """0-based rank of the true class among the scores; ties rank the larger index first."""
    true_score = probabilities[np.arange(len(labels)), labels][:, None]  # (N,) -> (N, 1)
    above = (probabilities > true_score).sum(axis=1)
    later_ties = ((probabilities == true_score) & (np.arange(probabilities.shape[1]) > labels[:, None])).sum(axis=1)
    return above + later_ties


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator != 0)


def _point(points: tuple[np.ndarray, np.ndarray, np.ndarray], index: int) -> dict[str, float]:
    precision, recall, thresholds = points
    return {"threshold": float(thresholds[index]), "precision": float(precision[index]),
            "recall": float(recall[index])}

"""Precision-recall curves and the tie rule, in numpy alone: what the figures are computed from.

The figures themselves (accuracy, precision, recall, F1, AP, operating points,
calibration, ...) are defined, one module per family, in :mod:`evaluate.figures`;
:mod:`evaluate.scoring` computes them all. Definitions here (they agree with
scikit-learn's functions, which the tests compare against):

- tie rule: classes are ranked by score, and on equal scores the lower class index
  ranks first. So ``predicted`` is the arg-max (the first class on ties), the
  runner-up is the best of the other classes, and top-1 accuracy equals accuracy.
- AP (average precision) of a curve: one point per distinct score; AP = sum over
  those points of (R_n - R_{n-1}) * P_n, the step-wise area under the precision-recall
  curve without interpolation (``sklearn.metrics.average_precision_score``).
- PR curves: per class the exact curve (one point per distinct score); the micro
  curve over all (sample, class) pairs, kept as the corners of its steps (the same
  line and AP, see :func:`corner_curve`); the macro curve is the mean over the classes
  with samples of the interpolated precision max{P(r') : r' >= r} on a grid of 101
  recall values.
- operating points: for a target precision, the lowest threshold whose precision
  reaches it (so the highest recall at that precision); for a target recall, the
  highest threshold whose recall reaches it (so the highest precision).

Speed: every curve comes from sorted score values, never from an arg-sort: the count
of samples at or above a threshold is a position in the sorted column, and the
positives are placed among the distinct scores by a ``searchsorted`` of their own
sorted scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RECALL_GRID = np.linspace(0.0, 1.0, 101)

TIE_RULE = "classes are ranked by score; on equal scores the lower class index ranks first"

@dataclass
class Curve:
    """A precision-recall curve, recall decreasing, ending at recall 0 / precision 1.

    Attributes:
        precision: Precision per point.
        recall: Recall per point.
        thresholds: Score threshold per point, increasing (one fewer than the other
            two; the last point has no threshold).
    """

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


def sorted_curve(ranked: np.ndarray, positives: np.ndarray) -> Curve:
    """The precision-recall curve of one binary problem from sorted scores.

    Args:
        ranked: Every sample's score, sorted ascending ``(N,)``.
        positives: The positive samples' scores, sorted ascending ``(P,)``.
    """
    first = np.empty(len(ranked), dtype=bool)
    first[:1] = True
    np.not_equal(ranked[1:], ranked[:-1], out=first[1:])
    starts = np.flatnonzero(first)  # first position of each distinct score
    thresholds = ranked[starts]
    # Positives per distinct score (each positive's score is one of the thresholds), summed from the top.
    per_threshold = np.bincount(np.searchsorted(thresholds, positives), minlength=len(thresholds))
    tps = np.cumsum(per_threshold[::-1])[::-1]
    precision, recall = np.ones(len(starts) + 1), np.zeros(len(starts) + 1)  # the closing point: P = 1, R = 0
    np.divide(tps, len(ranked) - starts, out=precision[:-1])
    if len(positives):
        np.divide(tps, len(positives), out=recall[:-1])
    else:
        recall[:-1] = 1.0
    return Curve(precision=precision, recall=recall, thresholds=thresholds)


def binary_curve(positive: np.ndarray, scores: np.ndarray) -> Curve:
    """The precision-recall curve of one binary problem (the definition above).

    Args:
        positive: Boolean ``(N,)``: whether each sample is of the positive class.
        scores: Score of the positive class ``(N,)``.
    """
    return sorted_curve(np.sort(scores), np.sort(scores[positive]))


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


def top_two(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class and the runner-up per sample, by the tie rule.

    Args:
        probabilities: Class scores ``(N, K)``, K >= 2.

    Returns:
        Two ``(N,)`` index arrays: the best class and the best of the others.
    """
    predicted = probabilities.argmax(axis=1)
    others = np.array(probabilities, dtype=np.float64)
    others[np.arange(len(others)), predicted] = -np.inf
    return predicted, others.argmax(axis=1)


def class_curves(labels: np.ndarray, probabilities: np.ndarray) -> list[Curve]:
    """The PR curve of every class, from one sort of the whole score matrix."""
    columns = np.sort(np.ascontiguousarray(probabilities.T), axis=1)  # (N, K) -> (K, N), each row ascending
    true_scores = probabilities[np.arange(len(labels)), labels]
    return [sorted_curve(columns[c], np.sort(true_scores[labels == c])) for c in range(probabilities.shape[1])]


def corner_curve(ranked: np.ndarray, positives: np.ndarray) -> Curve:
    """The corners of a precision-recall curve: the same drawn line and AP, far fewer points.

    Between two distinct positive scores only negatives are passed, so recall stays
    put while precision falls: a vertical segment. Its two ends are kept (the point at
    each distinct positive score, and the lowest point above it, when there is one),
    plus the point at the lowest score, so interpolation and AP are those of the full
    curve.

    Args:
        ranked: Every sample's score, sorted ascending ``(M,)``.
        positives: The positive samples' scores, sorted ascending ``(P,)``, P >= 1.
    """
    total, hits = len(ranked), len(positives)
    first = np.flatnonzero(np.r_[True, positives[1:] != positives[:-1]])
    values = positives[first]  # the distinct positive scores, ascending
    low = np.searchsorted(ranked, values, side="left")
    high = np.searchsorted(ranked, values, side="right")
    tps = hits - first  # positives scored at or above each value
    size = 2 * len(values) + 1  # the lowest point, then per value its corner and the bottom of the drop above it
    thresholds, tp, count = np.empty(size, dtype=ranked.dtype), np.empty(size), np.empty(size)
    thresholds[0], tp[0], count[0] = ranked[0], hits, total
    thresholds[1::2], tp[1::2], count[1::2] = values, tps, total - low
    thresholds[2::2], tp[2::2], count[2::2] = ranked[np.minimum(high, total - 1)], np.r_[tps[1:], 0], total - high
    keep = np.ones(size, dtype=bool)
    keep[0] = low[0] > 0
    keep[2::2] = high < np.r_[low[1:], total]  # negatives lie between this value and the next
    precision, recall = tp[keep] / count[keep], tp[keep] / hits
    return Curve(precision=np.r_[precision, 1.0], recall=np.r_[recall, 0.0], thresholds=thresholds[keep])


def micro_curve(labels: np.ndarray, probabilities: np.ndarray) -> Curve:
    """The corners of the PR curve of all (sample, class) pairs pooled; each sample's true class is its one positive."""
    true_scores = probabilities[np.arange(len(labels)), labels]
    return corner_curve(np.sort(probabilities, axis=None), np.sort(true_scores))  # (N, K) -> (N*K,) sorted


def _point(points: tuple[np.ndarray, np.ndarray, np.ndarray], index: int) -> dict[str, float]:
    precision, recall, thresholds = points
    return {"threshold": float(thresholds[index]), "precision": float(precision[index]),
            "recall": float(recall[index])}

"""Classification metrics from labels and class scores, in numpy alone.

Definitions (one-vs-rest for every per-class figure; they agree with scikit-learn's
functions, which the tests compare against):

- tie rule: classes are ranked by score, and on equal scores the lower class index
  ranks first. So ``predicted`` is the arg-max (the first class on ties), the
  runner-up is the best of the other classes, and top-1 accuracy equals accuracy.
- accuracy: fraction of samples whose predicted class is the true class, with a 95%
  Wilson score interval (:func:`evaluate.uncertainty.wilson_interval`).
- top-k accuracy: the true class is among the k highest-ranked classes (tie rule above).
- per class c: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their
  harmonic mean, 0 where a denominator is 0; support = number of true samples of c.
- AP (average precision) of class c: scores of class c ranked from high to low, with
  one point per distinct score; AP = sum over those points of (R_n - R_{n-1}) * P_n,
  the step-wise area under the precision-recall curve without interpolation
  (``sklearn.metrics.average_precision_score``). A class with no true sample has AP 0.
- macro: the unweighted mean over the classes that have test samples (classes without
  any are listed in ``classes_without_samples`` and left out); ``macro_all_classes``
  averages over every class, counting those as 0 (scikit-learn with
  ``labels=range(K)``). weighted: the mean weighted by support; micro: pooled counts.
  For single-label data micro precision = micro recall = micro F1 = accuracy; micro
  AP ranks all (sample, class) pairs together.
- PR curves: per class the exact curve (one point per distinct score); the micro
  curve over all (sample, class) pairs, kept as the corners of its steps (the same
  line and AP, see :func:`corner_curve`); the macro curve is the mean over the classes
  with samples of the interpolated precision max{P(r') : r' >= r} on a grid of 101
  recall values.
- operating points: for a target precision, the lowest threshold whose precision
  reaches it (so the highest recall at that precision); for a target recall, the
  highest threshold whose recall reaches it (so the highest precision). None for a
  class without samples.

Speed: every curve comes from sorted score values, never from an arg-sort: the count
of samples at or above a threshold is a position in the sorted column, and the
positives are placed among the distinct scores by a ``searchsorted`` of their own
sorted scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluate.uncertainty import safe_divide, wilson_interval

RECALL_GRID = np.linspace(0.0, 1.0, 101)

TIE_RULE = "classes are ranked by score; on equal scores the lower class index ranks first"

LARGEST_CONFUSIONS = 10
"""Confusion pairs listed in ``metrics.json`` (the most frequent first)."""


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


def score(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
          precision_targets: tuple[float, ...] = (0.95, 0.99), recall_targets: tuple[float, ...] = (0.95,),
          top_k: tuple[int, ...] = (1, 2, 3, 5)) -> Scores:
    """All point figures of a labelled set of predictions (intervals by bootstrap are elsewhere).

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
    curves = dict(zip(class_names, class_curves(labels, probabilities)))
    support = confusion.sum(axis=1)
    per_class = _per_class(confusion, curves, class_names, precision_targets, recall_targets)
    curves["micro"] = micro_curve(labels, probabilities)
    present = [name for name, s in zip(class_names, support) if s]
    macro_precision = np.mean([interpolated_precision(curves[name]) for name in present or class_names], axis=0)
    curves["macro"] = Curve(precision=macro_precision[::-1], recall=RECALL_GRID[::-1], thresholds=np.empty(0))
    correct = int(np.trace(confusion))
    rank = _true_class_rank(labels, probabilities)
    metrics = {
        "samples": int(count),
        "classes": list(class_names),
        "accuracy": correct / count,
        "accuracy_interval": list(wilson_interval(correct, count)),
        "top_k_accuracy": {str(k): float(np.mean(rank < k)) for k in top_k if k <= classes},
        **_averages(per_class, correct / count, average_precision(curves["micro"])),
        "per_class": per_class,
        "classes_without_samples": [name for name, s in zip(class_names, support) if s == 0],
        "largest_confusions": _largest_confusions(confusion, class_names),
        "tie_rule": TIE_RULE,
        "confusion_convention": "rows = true class, columns = predicted class",
    }
    return Scores(metrics=metrics, confusion=confusion, curves=curves, predicted=predicted)


def _per_class(confusion: np.ndarray, curves: dict[str, Curve], class_names: list[str],
               precision_targets: tuple[float, ...], recall_targets: tuple[float, ...]) -> list[dict[str, Any]]:
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    precision = safe_divide(tp, confusion.sum(axis=0).astype(np.float64))
    recall = safe_divide(tp, support.astype(np.float64))
    f1 = safe_divide(2 * precision * recall, precision + recall)
    return [{
        "class": name, "index": c, "support": int(support[c]), "precision": float(precision[c]),
        "recall": float(recall[c]), "f1": float(f1[c]), "ap": average_precision(curves[name]) if support[c] else 0.0,
        "operating_points": (operating_points(curves[name], list(precision_targets), list(recall_targets))
                             if support[c] else None),
    } for c, name in enumerate(class_names)]


def _averages(per_class: list[dict[str, Any]], accuracy: float, micro_ap: float) -> dict[str, Any]:
    names = ("precision", "recall", "f1", "ap")
    table = np.array([[row[m] for m in names] for row in per_class])  # (K, 4)
    support = np.array([row["support"] for row in per_class], dtype=np.float64)
    present = support > 0
    return {
        "macro": dict(zip(names, map(float, table[present].mean(axis=0)))),
        "macro_all_classes": dict(zip(names, map(float, table.mean(axis=0)))),
        "weighted": dict(zip(names, map(float, support @ table / support.sum()))),
        "micro": {"precision": accuracy, "recall": accuracy, "f1": accuracy, "ap": micro_ap},
    }


def _largest_confusions(confusion: np.ndarray, class_names: list[str]) -> list[dict[str, Any]]:
    off = confusion.astype(np.int64)
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:LARGEST_CONFUSIONS]  # (K, K) -> (K*K,) most frequent first
    support = confusion.sum(axis=1)
    out = []
    for true, predicted in zip(*np.unravel_index(flat, off.shape)):
        if off[true, predicted]:
            out.append({"true": class_names[true], "predicted": class_names[predicted],
                        "count": int(off[true, predicted]), "support": int(support[true])})
    return out


def _true_class_rank(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """0-based rank of the true class among the scores; ties rank the lower index first."""
    true_score = probabilities[np.arange(len(labels)), labels][:, None]  # (N,) -> (N, 1)
    above = (probabilities > true_score).sum(axis=1)
    earlier_ties = ((probabilities == true_score) & (np.arange(probabilities.shape[1]) < labels[:, None])).sum(axis=1)
    return above + earlier_ties


def _point(points: tuple[np.ndarray, np.ndarray, np.ndarray], index: int) -> dict[str, float]:
    precision, recall, thresholds = points
    return {"threshold": float(thresholds[index]), "precision": float(precision[index]),
            "recall": float(recall[index])}

"""Precision, recall and F1 from a confusion matrix: the one place they are computed.

Training (each epoch's ``per_class.csv`` and ``val/macro_f1``) and evaluation (the
``precision``, ``recall`` and ``f1`` figures, and their bootstrap resamples) both call
these functions, so the two can never disagree. numpy only: the evaluation machine has
no torch.

One rule for classes without support (no true sample) and classes never predicted,
as scikit-learn's ``zero_division=0``: a ratio whose denominator is 0 is 0. A macro
average covers the classes with support only; with no class supported it is NaN.
"""

from __future__ import annotations

import numpy as np


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` (broadcast, float64), 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class, one-vs-rest, from confusion counts.

    Args:
        confusion: ``(K, K)`` counts, rows the true class and columns the predicted one, or
            ``(K, K, b)``: ``b`` such matrices (bootstrap resamples) stacked on the last axis.

    Returns:
        Three ``(K,)`` (or ``(K, b)``) float64 arrays, 0 where a denominator is 0.
    """
    classes = confusion.shape[0]
    hits = confusion[np.arange(classes), np.arange(classes)].astype(np.float64)  # (K, K, ...) -> (K, ...)
    precision = safe_divide(hits, confusion.sum(axis=0))
    recall = safe_divide(hits, confusion.sum(axis=1))
    return precision, recall, safe_divide(2 * precision * recall, precision + recall)


def support(confusion: np.ndarray) -> np.ndarray:
    """True samples per class ``(K,)`` (int64) of a ``(K, K)`` confusion matrix."""
    return np.asarray(confusion).sum(axis=1).astype(np.int64)


def macro_average(per_class: np.ndarray, class_support: np.ndarray) -> float:
    """The unweighted mean of a per-class figure ``(K,)`` over the classes with support (NaN when none has)."""
    present = np.asarray(class_support) > 0
    return float(np.asarray(per_class, dtype=np.float64)[present].mean()) if present.any() else float("nan")

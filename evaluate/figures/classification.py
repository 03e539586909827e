"""Precision, recall and F1 per class, one-vs-rest, from the confusion matrix.

Per class c: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic
mean, 0 where a denominator is 0 (scikit-learn with ``zero_division=0``), computed by
:mod:`common.scores`, which training's per-class figures use too. Averages as
in :mod:`evaluate.figures.kinds`; for single-label data micro precision = micro recall =
micro F1 = accuracy.

F1 is bootstrapped: per class and macro 95% intervals, and a paired bootstrap of macro
F1 in ``compare``. On a resample a class drawn no time has recall and F1 0; the macro
average covers the classes with samples in the whole set.
"""

from __future__ import annotations

import numpy as np

from common.scores import precision_recall_f1
from evaluate.figures import register_figure
from evaluate.figures.base import Drawn, DrawnSums, Evidence, FigureValue
from evaluate.figures.kinds import PerClassFigure, per_class_value


def _value(evidence: Evidence, which: int) -> FigureValue:
    per_class = precision_recall_f1(evidence.confusion)[which]
    accuracy = np.trace(evidence.confusion) / len(evidence.labels)
    return per_class_value(per_class, evidence.support, accuracy)


@register_figure("precision")
class Precision(PerClassFigure):
    """Precision per class and averaged."""

    label = "precision"
    order = 20
    definition = "Precision = TP/(TP+FP), one-vs-rest, 0 where undefined."

    def compute(self, evidence: Evidence) -> FigureValue:
        """Precision per class and its averages."""
        return _value(evidence, 0)


@register_figure("recall")
class Recall(PerClassFigure):
    """Recall per class and averaged."""

    label = "recall"
    order = 21
    definition = "Recall = TP/(TP+FN), one-vs-rest."

    def compute(self, evidence: Evidence) -> FigureValue:
        """Recall per class and its averages."""
        return _value(evidence, 1)


@register_figure("f1")
class F1(PerClassFigure):
    """F1 per class and averaged, with bootstrap intervals."""

    label = "F1"
    order = 22
    definition = "F1 = the harmonic mean of precision and recall (0 where undefined)."

    def compute(self, evidence: Evidence) -> FigureValue:
        """F1 per class and its averages."""
        return _value(evidence, 2)

    def resampled(self, drawn: DrawnSums) -> Drawn:
        """F1 per class and macro F1 on each resample."""
        f1 = precision_recall_f1(drawn.confusion)[2].T  # (K, b) -> (b, K)
        return Drawn(f1[:, drawn.present].mean(axis=1), per_class=f1)

    def headline(self, value: FigureValue, evidence: Evidence) -> str:
        """``Macro F1 0.912 (95% interval ...).``"""
        text = f"Macro F1 {value.value:.3f}"
        if value.interval is not None:
            low, high = value.interval
            text += f" (95% interval {low:.3f} to {high:.3f}, bootstrap over images)"
        return text + "."

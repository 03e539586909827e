"""Balanced accuracy: the mean recall over the classes that have test samples.

balanced accuracy = (1/|C|) sum over c in C of TP_c / (TP_c + FN_c), with C the classes
that have at least one true sample: ``sklearn.metrics.balanced_accuracy_score`` (not
adjusted for chance). A class without test samples is left out, whether or not the
model predicts it (its recall is undefined; its false positives already lower the
recall of the classes they belong to). It equals the ``macro`` recall.

Its 95% interval is the percentile bootstrap over images, from the same resamples as
every other figure, and ``compare`` tests B - A with the paired bootstrap. On each
resample the definition is applied to the resampled images, as scikit-learn would: a
class drawn no time in that resample is left out of that resample's mean (not counted
as a recall of 0).
"""

from __future__ import annotations

import numpy as np

from common.scores import safe_divide
from evaluate.figures import register_figure
from evaluate.figures.base import Drawn, DrawnSums, Evidence, FigureValue
from evaluate.figures.kinds import ScalarFigure


@register_figure("balanced_accuracy")
class BalancedAccuracy(ScalarFigure):
    """Mean per-class recall over the classes with samples, with a bootstrap interval."""

    label = "balanced accuracy"
    order = 30
    definition = ("Balanced accuracy = the mean recall over the classes with test samples (scikit-learn's "
                  "balanced_accuracy_score; classes without samples are left out).")

    def compute(self, evidence: Evidence) -> FigureValue:
        """Mean recall over the classes with samples."""
        support = evidence.support
        present = support > 0
        return FigureValue(float(np.mean(np.diag(evidence.confusion)[present] / support[present])))

    def resampled(self, drawn: DrawnSums) -> Drawn:
        """Mean recall over the classes drawn in each resample."""
        hits = np.diagonal(drawn.confusion)  # (K, K, b) -> (b, K)
        support = drawn.confusion.sum(axis=1).T  # (K, K, b) -> (K, b) -> (b, K)
        return Drawn(safe_divide(hits, support).sum(axis=1) / np.count_nonzero(support, axis=1))

    def headline(self, value: FigureValue, evidence: Evidence) -> str:
        """``Balanced accuracy 91.2% (mean recall per class; 95% interval ...).``"""
        text = f"Balanced accuracy {value.value:.1%} (the mean recall per class"
        if value.interval is not None:
            low, high = value.interval
            text += f"; 95% interval {low:.1%} to {high:.1%}, bootstrap over images"
        return text + ")."

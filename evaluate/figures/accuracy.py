"""Accuracy and top-k accuracy.

- accuracy: the share of samples whose predicted class (the arg-max; on equal scores
  the lower class index) is the true class, with a 95% Wilson score interval
  (:func:`evaluate.uncertainty.wilson_interval`). ``compare`` tests it with McNemar's
  exact test on the samples that flipped (:func:`evaluate.uncertainty.mcnemar_exact`).
- top-k accuracy: the true class is among the k highest-ranked classes (same tie rule,
  so top-1 accuracy equals accuracy).
"""

from __future__ import annotations

import numpy as np

from evaluate.figures import register_figure
from evaluate.figures.base import Delta, Evidence, Figure, FigureValue, Line, MetricsDocument, Pair, PairedTest
from evaluate.figures.kinds import ScalarFigure
from evaluate.uncertainty import LEVEL, mcnemar_exact, wilson_interval

MCNEMAR = "McNemar exact (two-sided binomial test on the discordant samples)"


@register_figure("accuracy")
class Accuracy(ScalarFigure):
    """Top-1 accuracy with its Wilson interval; McNemar's exact test in ``compare``."""

    label = "accuracy"
    order = 10
    interval_method = "Wilson"
    definition = ("Accuracy: the share of images whose predicted class is the true class, with a 95% Wilson score "
                  "interval.")

    def compute(self, evidence: Evidence) -> FigureValue:
        """Accuracy and its Wilson interval."""
        correct, count = int(np.trace(evidence.confusion)), len(evidence.labels)
        return FigureValue(correct / count, interval=wilson_interval(correct, count))

    def headline(self, value: FigureValue, evidence: Evidence) -> str:
        """``Accuracy 97.5%: 351 of 360 test images right (95% interval ...).``"""
        samples, (low, high) = len(evidence.labels), value.interval
        return (f"Accuracy {value.value:.1%}: {int(np.trace(evidence.confusion))} of {samples} test images right "
                f"(95% interval {low:.1%} to {high:.1%}, Wilson).")

    @property
    def verdict_name(self) -> str:
        """``accuracy``."""
        return "accuracy"

    def paired_test(self, a: FigureValue, b: FigureValue, pair: Pair) -> PairedTest:
        """McNemar's exact test on the samples right in one model only (needs no bootstrap)."""
        right_a = pair.a.predicted == pair.a.labels
        right_b = pair.b.predicted == pair.b.labels
        fixed, broken = int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
        p_value = mcnemar_exact(fixed, broken)
        return PairedTest(MCNEMAR, b.value - a.value, p_value < 1 - LEVEL, p_value=p_value, fixed=fixed,
                          broken=broken)

    def verdict_sentence(self, test: PairedTest, resamples: int) -> str:
        """The accuracy delta in points, McNemar's p-value and the flips."""
        return (f"Accuracy: B - A = {test.delta * 100:+.2f} points; McNemar exact p = {test.p_value:.4g} on "
                f"{test.fixed + test.broken} flipped images ({test.fixed} fixed, {test.broken} broken): "
                f"{test.judgement()}.")


@register_figure("top_k_accuracy")
class TopKAccuracy(Figure):
    """Top-k accuracy for each k of the options that is at most the class count."""

    label = "top-k accuracy"
    order = 11
    definition = "Top-k: the true class is among the k highest-ranked classes."

    def compute(self, evidence: Evidence) -> FigureValue:
        """``detail``: k -> top-k accuracy."""
        rank = true_class_rank(evidence.labels, evidence.probabilities)
        classes = evidence.probabilities.shape[1]
        return FigureValue(None, detail={k: float(np.mean(rank < k)) for k in evidence.options.top_k if k <= classes})

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """``top_k_accuracy``: ``{"<k>": value}``."""
        document.top["top_k_accuracy"] = {str(k): v for k, v in value.detail.items()}

    def summary(self, value: FigureValue) -> list[Line]:
        """``top-<k> accuracy: value`` per k."""
        return [Line(f"top-{k} accuracy", f"{v:.4f}") for k, v in value.detail.items()]

    def deltas(self, a: FigureValue, b: FigureValue) -> list[Delta]:
        """``top_<k>_accuracy`` per k."""
        return [Delta(f"top_{k}_accuracy", a.detail[k], b.detail[k]) for k in a.detail]


def true_class_rank(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """0-based rank of the true class among the scores; ties rank the lower index first."""
    true_score = probabilities[np.arange(len(labels)), labels][:, None]  # (N,) -> (N, 1)
    above = (probabilities > true_score).sum(axis=1)
    earlier_ties = ((probabilities == true_score) & (np.arange(probabilities.shape[1]) < labels[:, None])).sum(axis=1)
    return above + earlier_ties

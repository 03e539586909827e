"""Average precision (AP) per class, one-vs-rest, and its averages.

AP of class c: the samples ranked by the class's score, one point per distinct score;
AP = sum over those points of (R_n - R_{n-1}) * P_n, the step-wise area under the
precision-recall curve without interpolation (``sklearn.metrics.average_precision_score``).
A class with no true sample has AP 0. Micro AP ranks all (sample, class) pairs together
(the micro curve of :mod:`evaluate.metrics`).

On bootstrap resamples (per-class and macro intervals, a paired bootstrap of macro AP in
``compare``), AP is a weighted sum of the draw counts. Rank the samples by the class's
score, high to low; cut the ranking after each distinct score that a positive sample
has (S_c cuts, at u_0 > u_1 > ...), so segment s holds the samples scored in [u_s,
u_(s-1)). Per resample, with n_s the draws in segment s and a_s the draws of positives
in it (all at score u_s), TP_s = cumsum(a), N_s = cumsum(n) and AP = sum(a_s TP_s / N_s)
/ TP_last: the step-wise AP, whose precision only changes where a positive is. Samples
below the lowest positive score do not count. A class drawn no time has AP 0.
"""

from __future__ import annotations

import numpy as np

from common.scores import safe_divide
from evaluate.figures import register_figure
from evaluate.figures.base import Drawn, DrawnSums, Evidence, FigureValue, SumRows
from evaluate.figures.kinds import PerClassFigure, per_class_value
from evaluate.metrics import average_precision


@register_figure("ap")
class AveragePrecision(PerClassFigure):
    """AP per class, macro and micro, with bootstrap intervals."""

    label = "AP"
    order = 23
    definition = ("AP is the step-wise area under the precision-recall curve, sum of (R_n - R_(n-1)) P_n over "
                  "distinct score thresholds (no interpolation); micro AP ranks all sample-class pairs together.")

    def compute(self, evidence: Evidence) -> FigureValue:
        """AP per class (0 without samples) from the evidence's curves; micro AP from the micro curve."""
        support = evidence.support
        per_class = [average_precision(evidence.curves[name]) if support[c] else 0.0
                     for c, name in enumerate(evidence.class_names)]
        return per_class_value(np.array(per_class), support, average_precision(evidence.curves["micro"]))

    def resample_rows(self, evidence: Evidence) -> SumRows:
        """Per class its segments' draws, then its positives' draws per segment (see module docstring)."""
        labels, probabilities = evidence.labels, evidence.probabilities
        true_scores = probabilities[np.arange(len(labels)), labels]
        rows, images, segments, offset = [], [], [], 0
        for c in range(probabilities.shape[1]):
            cuts = np.unique(true_scores[labels == c])  # the distinct positive scores, ascending
            segment = len(cuts) - np.searchsorted(cuts, probabilities[:, c], side="right")  # cuts above the score
            kept = np.flatnonzero(segment < len(cuts))
            positives = np.flatnonzero(labels == c)
            rows += [offset + segment[kept], offset + len(cuts) + segment[positives]]
            images += [kept, positives]
            segments.append(len(cuts))
            offset += 2 * len(cuts)
        empty = np.empty(0, dtype=np.int64)
        return SumRows(np.concatenate([empty, *rows]), np.concatenate([empty, *images]), offset, segments)

    def resampled(self, drawn: DrawnSums) -> Drawn:
        """AP per class and macro AP on each resample."""
        sums, segments_per_class = drawn.sums, drawn.layout
        ap = np.zeros((len(segments_per_class), sums.shape[1]))
        offset, most = 0, max(segments_per_class, default=0)
        # Buffers reused by every class (fresh large arrays cost page faults); cumulative counts
        # stay exact integers (see evaluate.uncertainty.count_dtype).
        cumulative, terms = np.empty((most, sums.shape[1]), sums.dtype), np.zeros((most, sums.shape[1]))
        for c, segments in enumerate(segments_per_class):
            counted = np.cumsum(sums[offset:offset + segments], axis=0, out=sums[offset:offset + segments])  # (S, b)
            hits = sums[offset + segments:offset + 2 * segments]
            tps = np.cumsum(hits, axis=0, out=cumulative[:segments])
            # precision TP/N at each segment; left stale (finite) where nothing was drawn yet, and so no hit
            ratio = np.divide(tps, counted, out=terms[:segments], where=counted > 0)
            ap[c] = safe_divide(np.multiply(ratio, hits, out=ratio).sum(axis=0), tps[-1]) if segments else 0.0
            offset += 2 * segments
        ap = ap.T  # (K, b) -> (b, K)
        return Drawn(ap[:, drawn.present].mean(axis=1), per_class=ap)

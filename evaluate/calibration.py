"""Calibration: does a confidence of 0.9 mean right 90% of the time?

Definitions (``confidence`` = the predicted class's probability, ``correct`` = the
predicted class is the true class, tie rule as in :mod:`evaluate.metrics`):

- bins: ``BINS`` = 15 equal-width confidence bins, bin i = (i/15, (i+1)/15] (bin 0
  also holds confidence 0).
- ECE (expected calibration error) = sum over bins of (n_i / N) |accuracy_i -
  confidence_i|, with accuracy_i and confidence_i the bin's mean correctness and mean
  confidence. MCE (maximum calibration error) = the largest |accuracy_i -
  confidence_i| over non-empty bins.
- NLL (negative log-likelihood) = mean of -ln p(true class), the cross-entropy that
  ``val/loss`` measures in training; probabilities are clipped to [eps, 1 - eps], eps
  the machine epsilon of the scores' type (as ``sklearn.metrics.log_loss`` does).
- Brier score = mean over samples of sum over classes (p_c - y_c)^2, y the one-hot
  true class: 0 is perfect, 2 the worst.

The reliability diagram plots accuracy_i against confidence_i per bin, with the
diagonal of perfect calibration; ``reliability.csv`` holds its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.files import write_csv
from common.plotting import new_figure, save_figure

BINS = 15
RELIABILITY = "reliability"
"""Stem of the reliability diagram's PNG and CSV."""


@dataclass
class Calibration:
    """Calibration figures of a set of predictions.

    Attributes:
        edges: Bin edges ``(BINS + 1,)``.
        counts: Samples per bin.
        confidence: Mean confidence per bin (NaN when empty).
        accuracy: Accuracy per bin (NaN when empty).
        ece: Expected calibration error.
        mce: Maximum calibration error.
        nll: Negative log-likelihood (nats per sample).
        brier: Multi-class Brier score.
        mean_confidence: Mean confidence over all samples.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float
    mce: float
    nll: float
    brier: float
    mean_confidence: float

    def summary(self) -> dict[str, Any]:
        """The JSON-ready figures, for ``metrics.json``."""
        return {"bins": len(self.counts), "ece": self.ece, "mce": self.mce, "nll": self.nll, "brier": self.brier,
                "mean_confidence": self.mean_confidence,
                "binning": "equal width on the predicted class's probability, bin i = (i/B, (i+1)/B]"}


def calibrate(labels: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> Calibration:
    """Calibration figures (see module docstring).

    Args:
        labels: True class indices ``(N,)``.
        probabilities: Class probabilities ``(N, K)``.
        bins: Number of equal-width confidence bins.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[rows, predicted].astype(np.float64)
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # edges[i] < c <= edges[i+1]
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
    gap = np.abs(accuracy - mean_confidence)
    filled = counts > 0
    floor = np.finfo(probabilities.dtype).eps
    true_probability = np.clip(probabilities[rows, labels].astype(np.float64), floor, 1 - floor)
    squared = np.square(probabilities.astype(np.float64)).sum(axis=1) - 2 * probabilities[rows, labels] + 1
    return Calibration(
        edges=edges, counts=counts, confidence=mean_confidence, accuracy=accuracy,
        ece=float((counts[filled] / len(labels)) @ gap[filled]), mce=float(gap[filled].max()),
        nll=float(-np.log(true_probability).mean()), brier=float(squared.mean()),
        mean_confidence=float(confidence.mean()),
    )


def write_reliability(folder: Path, calibration: Calibration) -> list[str]:
    """``reliability.png`` (the diagram, with sample counts per bin) and ``reliability.csv``."""
    c = calibration
    write_csv(folder / f"{RELIABILITY}.csv",
              ["bin_low", "bin_high", "count", "mean_confidence", "accuracy", "gap"],
              [[f"{low:.6g}", f"{high:.6g}", int(n), *(("", "", "") if not n else (
                  f"{conf:.6g}", f"{acc:.6g}", f"{acc - conf:.6g}"))]
               for low, high, n, conf, acc in zip(c.edges[:-1], c.edges[1:], c.counts, c.confidence, c.accuracy)])
    _plot_reliability(folder / f"{RELIABILITY}.png", c)
    return [f"{RELIABILITY}.png", f"{RELIABILITY}.csv"]


def _plot_reliability(path: Path, c: Calibration) -> None:
    """The diagram: accuracy against confidence per bin over the diagonal, and the samples per bin (symlog)."""
    figure = new_figure(5.5, 6.2)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    centers, width = (c.edges[:-1] + c.edges[1:]) / 2, np.diff(c.edges)
    filled = c.counts > 0
    top.plot([0, 1], [0, 1], ":", color="#888888", label="perfect calibration")
    top.bar(centers[filled], c.accuracy[filled], width=width[filled] * 0.9, color="#4c72b0", alpha=0.8,
            label="accuracy in the bin")
    top.plot(c.confidence[filled], c.accuracy[filled], "o", color="#c44e52", markersize=4,
             label="(mean confidence, accuracy)")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
            title=f"Reliability: ECE {c.ece:.3f}, MCE {c.mce:.3f} ({len(c.counts)} bins)")
    top.legend(fontsize=7, loc="best")
    top.grid(alpha=0.3)
    bottom.bar(centers, c.counts, width=width * 0.9, color="#999999")
    bottom.set(xlabel="confidence (probability of the predicted class)", ylabel="samples")
    bottom.set_yscale("symlog")
    save_figure(figure, path)

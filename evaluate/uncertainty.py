"""Uncertainty: intervals for the figures and tests for comparisons.

- **Wilson score interval** for accuracy (a binomial proportion), no continuity
  correction: with p = k/n and z the normal quantile of the level,
  (p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
- **McNemar's exact test** of two models' top-1 correctness on the same samples: of
  the n discordant samples (right in one model only), ``fixed`` are right only in B;
  under "no difference" fixed ~ Binomial(n, 1/2); the two-sided p-value is
  min(1, 2 P(X <= min(fixed, broken))).
- **Bootstrap** (percentile method): B resamples of the images, each drawing N images
  with replacement (seeded, ``numpy.random.default_rng(seed)``); every figure is
  recomputed on each resample and the interval is the 2.5th and 97.5th percentile of
  its B values (``numpy.percentile``, linear interpolation). A resample is a vector of
  multinomial counts (how often each image was drawn), so each figure is a weighted
  sum: the confusion counts of all resamples are one sparse-matrix product, and so
  are the AP terms (see :class:`_Design`). On a resample a class that was drawn no
  time has recall, F1 and AP 0, as in the point figures. Macro figures average the
  classes that have samples in the whole set.
- **Paired bootstrap** of two models on the same samples: the same resamples for
  both; the interval of B - A on each resample. B differs from A at 95% when the
  interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

LEVEL = 0.95
"""Confidence level of every interval."""

CHUNK_CELLS = 10_000_000
"""Images x resamples held in memory at once by the bootstrap."""


def wilson_interval(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (see module docstring)."""
    if trials <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    center = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return max(0.0, (center - half) / scale), min(1.0, (center + half) / scale)


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided p-value of McNemar's exact test from the two discordant counts."""
    n = fixed + broken
    if n == 0:
        return 1.0
    i = np.arange(min(fixed, broken) + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(k + 1) + math.lgamma(n - k + 1) for k in i])
               - n * math.log(2))
    tail = float(np.exp(np.logaddexp.reduce(log_pmf)))
    return min(1.0, 2 * tail)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Percentile interval over the first axis: ``(B, ...) -> (2, ...)``."""
    return np.percentile(values, [50 * (1 - level), 50 * (1 + level)], axis=0)


def count_dtype(count: int) -> type:
    """The float type that holds sums of ``count`` draw counts exactly: float32 below 2**24."""
    return np.float32 if count < 2**24 else np.float64


def resample_counts(count: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``count`` images as draw counts, in chunks.

    Yields:
        ``(count, b)`` arrays of :func:`count_dtype`: column j holds how many times each
        image was drawn in one resample (each column sums to ``count``); the chunks
        have ``resamples`` columns in all, in the order the generator drew them.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, CHUNK_CELLS // count))
    dtype = np.int32 if count < 2**31 else np.int64
    for start in range(0, resamples, chunk):
        draws = rng.integers(0, count, size=(min(chunk, resamples - start), count), dtype=dtype)
        counts = np.empty(draws.shape, dtype=count_dtype(count))  # (b, N)
        for row, drawn in zip(counts, draws):
            row[:] = np.bincount(drawn, minlength=count)
        yield np.ascontiguousarray(counts.T)  # (b, N) -> (N, b)


@dataclass
class Resampled:
    """Figures recomputed on every bootstrap resample.

    Attributes:
        f1: Per-class F1 ``(B, K)``.
        ap: Per-class AP ``(B, K)``.
        present: Classes with samples in the whole set ``(K,)``: the macro averages' classes.
    """

    f1: np.ndarray
    ap: np.ndarray
    present: np.ndarray

    @property
    def macro_f1(self) -> np.ndarray:
        """Macro F1 per resample ``(B,)``."""
        return self.f1[:, self.present].mean(axis=1)

    @property
    def macro_ap(self) -> np.ndarray:
        """Macro AP per resample ``(B,)``."""
        return self.ap[:, self.present].mean(axis=1)


class _Design:
    """One model's figures as weighted sums: a sparse matrix whose product with the
    resamples' draw counts gives every count a figure needs.

    Rows ``0 .. K*K-1``: the confusion cells (true * K + predicted). Then, per class c,
    its AP terms. Rank the samples by the class's score, high to low; cut the ranking
    after each distinct score that a positive sample has (S_c cuts, at u_0 > u_1 > ...),
    so segment s holds the samples scored in [u_s, u_(s-1)). Per resample, with n_s the
    draws in segment s and a_s the draws of positives in it (all at score u_s),
    TP_s = cumsum(a), N_s = cumsum(n) and AP = sum(a_s TP_s / N_s) / TP_last: the
    step-wise AP, whose precision only changes where a positive is. Samples below the
    lowest positive score do not count.
    """

    def __init__(self, labels: np.ndarray, probabilities: np.ndarray):
        from scipy import sparse

        count, classes = probabilities.shape
        predicted = probabilities.argmax(axis=1)
        rows, columns = [labels * classes + predicted], [np.arange(count)]
        true_scores = probabilities[np.arange(count), labels]
        self.classes, self.segments, offset = classes, [], classes * classes
        for c in range(classes):
            cuts = np.unique(true_scores[labels == c])  # the distinct positive scores, ascending
            segment = len(cuts) - np.searchsorted(cuts, probabilities[:, c], side="right")  # cuts above the score
            kept = np.flatnonzero(segment < len(cuts))
            positives = np.flatnonzero(labels == c)
            rows += [offset + segment[kept], offset + len(cuts) + segment[positives]]
            columns += [kept, positives]
            self.segments.append(len(cuts))
            offset += 2 * len(cuts)
        self.matrix = sparse.csr_array((np.ones(sum(map(len, rows)), dtype=count_dtype(count)),
                                        (np.concatenate(rows), np.concatenate(columns))), shape=(offset, count))

    def figures(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class F1 and AP ``(b, K)`` each, from ``matrix @ counts`` ``(rows, b)``."""
        k = self.classes
        confusion = sums[:k * k].astype(np.float64).reshape(k, k, -1)  # (K*K, b) -> (K, K, b)
        tp = confusion[np.arange(k), np.arange(k)]  # (K, b)
        precision = safe_divide(tp, confusion.sum(axis=0))
        recall = safe_divide(tp, confusion.sum(axis=1))
        f1 = safe_divide(2 * precision * recall, precision + recall)
        ap = np.zeros_like(tp)
        offset, most = k * k, max(self.segments, default=0)
        # Buffers reused by every class (fresh large arrays cost page faults); cumulative counts
        # stay exact integers (see count_dtype).
        cumulative, terms = np.empty((most, sums.shape[1]), sums.dtype), np.zeros((most, sums.shape[1]))
        for c, segments in enumerate(self.segments):
            drawn = np.cumsum(sums[offset:offset + segments], axis=0, out=sums[offset:offset + segments])  # (S, b)
            hits = sums[offset + segments:offset + 2 * segments]
            tps = np.cumsum(hits, axis=0, out=cumulative[:segments])
            # precision TP/N at each segment; left stale (finite) where nothing was drawn yet, and so no hit
            ratio = np.divide(tps, drawn, out=terms[:segments], where=drawn > 0)
            ap[c] = safe_divide(np.multiply(ratio, hits, out=ratio).sum(axis=0), tps[-1]) if segments else 0.0
            offset += 2 * segments
        return f1.T, ap.T


def resampled_figures(labels: np.ndarray, probability_sets: Sequence[np.ndarray], resamples: int, seed: int
                      ) -> list[Resampled]:
    """Per-class F1 and AP of one or more models on the same bootstrap resamples.

    Args:
        labels: True class indices ``(N,)``.
        probability_sets: Each model's class scores ``(N, K)``.
        resamples: Number of resamples B (at least 1).
        seed: Seed of the resampling.
    """
    from scipy import sparse

    labels = np.asarray(labels, dtype=np.int64)
    designs = [_Design(labels, np.asarray(p)) for p in probability_sets]
    stacked = sparse.vstack([d.matrix for d in designs], format="csr")
    bounds = np.cumsum([0, *(d.matrix.shape[0] for d in designs)])
    parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in designs]
    for counts in resample_counts(len(labels), resamples, seed):
        sums = stacked @ counts  # (rows, N) @ (N, b) -> (rows, b)
        for index, design in enumerate(designs):
            parts[index].append(design.figures(sums[bounds[index]:bounds[index + 1]]))
    present = np.bincount(labels, minlength=designs[0].classes) > 0
    return [Resampled(np.concatenate([f for f, _ in chunks]), np.concatenate([a for _, a in chunks]), present)
            for chunks in parts]


def bootstrap_intervals(labels: np.ndarray, probabilities: np.ndarray, resamples: int, seed: int
                        ) -> dict[str, Any]:
    """95% percentile-bootstrap intervals of per-class and macro F1 and AP.

    Returns:
        ``{"f1": (K, 2), "ap": (K, 2), "macro_f1": (2,), "macro_ap": (2,)}`` as
        ``[low, high]`` lists; a class without samples gets None.
    """
    figures = resampled_figures(labels, [probabilities], resamples, seed)[0]
    out: dict[str, Any] = {}
    for name in ("f1", "ap"):
        bounds = percentile_interval(getattr(figures, name)).T  # (2, K) -> (K, 2)
        out[name] = [list(map(float, b)) if present else None for b, present in zip(bounds, figures.present)]
        out[f"macro_{name}"] = list(map(float, percentile_interval(getattr(figures, f"macro_{name}"))))
    return out


def paired_bootstrap(labels: np.ndarray, probabilities_a: np.ndarray, probabilities_b: np.ndarray,
                     resamples: int, seed: int) -> dict[str, Any]:
    """Paired-bootstrap intervals of B - A for macro F1 and macro AP.

    Returns:
        Per figure ``{"interval": [low, high], "differs": bool}``: whether the 95%
        interval of the difference excludes 0.
    """
    a, b = resampled_figures(labels, [probabilities_a, probabilities_b], resamples, seed)
    out = {}
    for name in ("macro_f1", "macro_ap"):
        low, high = map(float, percentile_interval(getattr(b, name) - getattr(a, name)))
        out[name] = {"interval": [low, high], "differs": bool(low > 0 or high < 0)}
    return out


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` (broadcast, float64), 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)

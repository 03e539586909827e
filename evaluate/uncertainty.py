"""Uncertainty: intervals for the figures and tests for comparisons.

- **Wilson score interval** for accuracy (a binomial proportion), no continuity
  correction: with p = k/n and z the normal quantile of the level,
  (p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
- **McNemar's exact test** of two models' top-1 correctness on the same samples: of
  the n discordant samples (right in one model only), ``fixed`` are right only in B;
  under "no difference" fixed ~ Binomial(n, 1/2); the two-sided p-value is
  min(1, 2 P(X <= min(fixed, broken))).
- **Bootstrap** (percentile method): B resamples of the images, each drawing N images
  with replacement (seeded, ``numpy.random.default_rng(seed)``); every bootstrapped
  figure is recomputed on each resample and the interval is the 2.5th and 97.5th
  percentile of its B values (``numpy.percentile``, linear interpolation). A resample
  is a vector of multinomial counts (how often each image was drawn), so what a figure
  needs is a weighted sum: the confusion counts of all resamples, and any sums a figure
  adds (the AP terms, :mod:`evaluate.figures.average_precision`), are one sparse-matrix
  product per chunk of resamples (:func:`resampled_sums`; :mod:`evaluate.scoring` builds
  the matrix from the figures).
- **Paired bootstrap** of two models on the same samples: the same resamples for
  both; the interval of B - A on each resample. B differs from A at 95% when the
  interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
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


def resampled_sums(matrices: Sequence[Any], resamples: int, seed: int) -> Iterator[list[np.ndarray]]:
    """Each matrix's product with the draw counts of every resample, chunk by chunk.

    Args:
        matrices: Sparse ``(rows_i, N)`` matrices over the same N images (one per model).
        resamples: Number of resamples B (at least 1).
        seed: Seed of the resampling (:func:`resample_counts`).

    Yields:
        Per chunk of b resamples, one ``(rows_i, b)`` array per matrix, fresh (the
        caller may overwrite it); the chunks hold the B resamples in order.
    """
    from scipy import sparse

    stacked = sparse.vstack(list(matrices), format="csr")
    bounds = np.cumsum([0, *(m.shape[0] for m in matrices)])
    for counts in resample_counts(stacked.shape[1], resamples, seed):
        sums = stacked @ counts  # (rows, N) @ (N, b) -> (rows, b)
        yield [sums[bounds[i]:bounds[i + 1]] for i in range(len(matrices))]



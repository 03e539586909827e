"""Intervals and tests against independent computations: scipy's binomial tests, and
scikit-learn's metrics on explicitly resampled images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as reference

from evaluate import uncertainty
from evaluate.figures import build_figures
from evaluate.scoring import draws, gather_evidence, metrics_json, score, with_intervals
from evaluate.uncertainty import mcnemar_exact, resample_counts, wilson_interval
from evaluate.verdict import verdict
from tests.evaluate.test_metrics import predictions


def bootstrap_intervals(labels, probabilities, resamples, seed):
    """metrics.json's bootstrap intervals, as the evaluation writes them."""
    names = [f"c{c}" for c in range(probabilities.shape[1])]
    return metrics_json(with_intervals(score(labels, probabilities, names), resamples, seed))


def paired_bootstrap(labels, a, b, resamples, seed):
    """compare.json's verdict, as ``evaluate compare`` writes it."""
    names = [f"c{c}" for c in range(a.shape[1])]
    return verdict(score(labels, a, names), score(labels, b, names), resamples, seed).to_json()


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (10, 10), (359, 360), (323, 360), (1, 1), (5000, 9999)])
def test_the_accuracy_interval_is_scipys_wilson_interval(successes, trials):
    expected = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((expected.low, expected.high), abs=1e-12)


@pytest.mark.parametrize(("fixed", "broken"), [(0, 0), (5, 0), (0, 7), (46, 11), (12, 12), (300, 260), (1, 2)])
def test_mcnemar_exact_is_a_two_sided_binomial_test_on_the_flips(fixed, broken):
    expected = binomtest(fixed, fixed + broken, 0.5).pvalue if fixed + broken else 1.0
    assert mcnemar_exact(fixed, broken) == pytest.approx(expected, rel=1e-9)


def test_resamples_are_seeded_draws_of_every_image_count_times(monkeypatch):
    first = np.concatenate(list(resample_counts(50, 40, seed=3)), axis=1)
    assert first.shape == (50, 40) and np.all(first.sum(axis=0) == 50)
    assert np.array_equal(first, np.concatenate(list(resample_counts(50, 40, seed=3)), axis=1))
    assert not np.array_equal(first, np.concatenate(list(resample_counts(50, 40, seed=4)), axis=1))
    monkeypatch.setattr(uncertainty, "CHUNK_CELLS", 50 * 7)  # chunks of 7 resamples: the same draws
    chunks = list(resample_counts(50, 40, seed=3))
    assert len(chunks) == 6 and np.array_equal(np.concatenate(chunks, axis=1), first)


def scikit_learn_on_resamples(labels, probabilities, counts):
    """Per-class F1 and AP of each resample, by expanding it into its images."""
    classes = probabilities.shape[1]
    f1, ap = [], []
    for column in counts.T:
        images = np.repeat(np.arange(len(labels)), column.astype(int))
        drawn, scores = labels[images], probabilities[images]
        f1.append(reference.f1_score(drawn, scores.argmax(1), labels=range(classes), average=None, zero_division=0))
        ap.append([reference.average_precision_score(drawn == c, scores[:, c]) if (drawn == c).any() else 0.0
                   for c in range(classes)])
    return np.array(f1), np.array(ap)


@pytest.mark.parametrize(("count", "classes", "decimals"), [(300, 4, 2), (120, 3, 1), (400, 5, None)])
def test_every_resample_is_scored_as_scikit_learn_scores_it(count, classes, decimals):
    labels, probabilities = predictions(count, classes, seed=count, decimals=decimals)
    labels[labels == classes - 1] = 0  # a class without samples
    labels[:2] = classes - 2  # a rare class, absent from some resamples
    labels[2:][labels[2:] == classes - 2] = 1
    evidence = gather_evidence(labels, probabilities, [f"c{c}" for c in range(classes)])
    figures = draws([evidence], build_figures(["f1", "ap"]), 30, seed=1)[0]
    counts = np.concatenate(list(resample_counts(count, 30, seed=1)), axis=1)
    f1, ap = scikit_learn_on_resamples(labels, probabilities, counts)
    assert (counts[:2].sum(axis=0) == 0).any()  # the rare class really is missing from a resample
    np.testing.assert_allclose(figures["f1"].per_class, f1, atol=1e-12)
    np.testing.assert_allclose(figures["ap"].per_class, ap, atol=1e-9)
    present = np.bincount(labels, minlength=classes) > 0
    np.testing.assert_allclose(figures["f1"].value, f1[:, present].mean(axis=1), atol=1e-12)
    intervals = bootstrap_intervals(labels, probabilities, 30, seed=1)
    missing = intervals["per_class"][classes - 1]
    assert missing["f1_interval"] is None and missing["ap_interval"] is None
    np.testing.assert_allclose(intervals["per_class"][0]["ap_interval"], np.percentile(ap[:, 0], [2.5, 97.5]),
                               atol=1e-9)
    np.testing.assert_allclose(intervals["macro"]["ap_interval"],
                               np.percentile(ap[:, present].mean(axis=1), [2.5, 97.5]), atol=1e-9)


def test_intervals_narrow_with_more_images_and_hold_the_point_figure():
    widths = []
    for count in (200, 5000):
        labels, probabilities = predictions(count, 5, seed=2)
        intervals = bootstrap_intervals(labels, probabilities, 400, seed=0)
        macro_f1 = reference.f1_score(labels, probabilities.argmax(1), average="macro")
        low, high = intervals["macro"]["f1_interval"]
        assert low < macro_f1 < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # about 1/sqrt(25)


def test_the_paired_bootstrap_scores_both_models_on_the_same_resamples():
    labels, a = predictions(300, 4, seed=8)
    b = np.roll(a, 1, axis=0) * 0.3 + a * 0.7  # a different, worse model
    same = paired_bootstrap(labels, a, a, 50, seed=0)
    assert same["macro_f1"] == {**same["macro_f1"], "interval": [0.0, 0.0], "differs": False}
    result = paired_bootstrap(labels, a, b, 50, seed=0)
    counts = np.concatenate(list(resample_counts(300, 50, seed=0)), axis=1)
    present = np.bincount(labels) > 0
    f1_a, ap_a = scikit_learn_on_resamples(labels, a, counts)
    f1_b, ap_b = scikit_learn_on_resamples(labels, b, counts)
    for name, delta in (("macro_f1", f1_b - f1_a), ("macro_ap", ap_b - ap_a)):
        expected = np.percentile(delta[:, present].mean(axis=1), [2.5, 97.5])
        np.testing.assert_allclose(result[name]["interval"], expected, atol=1e-9)
        assert result[name]["differs"] == bool(expected[1] < 0 or expected[0] > 0)

"""Calibration figures against independent computations (scikit-learn where it has them)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn import metrics as reference

from evaluate.calibration import calibrate, write_reliability
from tests.evaluate.test_metrics import predictions


def brute_force_bins(labels, probabilities, bins=15):
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = probabilities.argmax(axis=1) == labels
    rows = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = (confidence > low) & (confidence <= high) | ((confidence == 0) & (i == 0))
        if inside.any():
            rows.append((inside.sum(), confidence[inside].mean(), correct[inside].mean()))
    return rows


@pytest.mark.parametrize(("count", "classes", "decimals"), [(2000, 10, None), (500, 4, 2), (300, 3, 1)])
def test_calibration_figures_match_independent_computations(count, classes, decimals):
    labels, probabilities = predictions(count, classes, seed=count, decimals=decimals)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # rounding broke the sums
    result = calibrate(labels, probabilities)
    rows = brute_force_bins(labels, probabilities)
    gaps = [abs(accuracy - confidence) for _, confidence, accuracy in rows]
    assert result.ece == pytest.approx(sum(n / count * gap for (n, _, _), gap in zip(rows, gaps)), abs=1e-12)
    assert result.mce == pytest.approx(max(gaps), abs=1e-12)
    assert sorted(result.counts[result.counts > 0]) == sorted(n for n, _, _ in rows)
    assert result.nll == pytest.approx(reference.log_loss(labels, probabilities, labels=range(classes)), rel=1e-6)
    onehot = np.eye(classes)[labels]
    brier = np.mean(np.sum((probabilities.astype(np.float64) - onehot) ** 2, axis=1))
    assert result.brier == pytest.approx(brier, abs=1e-9)
    assert result.brier == pytest.approx(reference.brier_score_loss(labels, probabilities, labels=range(classes)),
                                         abs=1e-6)


def test_calibrated_predictions_have_a_small_ece_and_overconfident_ones_a_large_one():
    rng = np.random.default_rng(0)
    count = 20000
    confidence = rng.uniform(0.5, 1.0, count)
    labels = np.where(rng.random(count) < confidence, 0, 1)  # right with probability = confidence
    calibrated = np.stack([confidence, 1 - confidence], axis=1).astype(np.float32)
    assert calibrate(labels, calibrated).ece < 0.02
    sharpened = np.stack([np.sqrt(confidence), 1 - np.sqrt(confidence)], axis=1).astype(np.float32)
    result = calibrate(labels, sharpened)
    assert result.ece > 0.05 and result.mean_confidence > (labels == 0).mean()


def test_the_reliability_csv_holds_the_diagram(tmp_path):
    labels, probabilities = predictions(800, 5, seed=4)
    result = calibrate(labels, probabilities)
    assert write_reliability(tmp_path, result) == ["reliability.png", "reliability.csv"]
    rows = list(csv.DictReader((tmp_path / "reliability.csv").open()))
    assert len(rows) == 15 and sum(int(r["count"]) for r in rows) == 800
    filled = [r for r in rows if int(r["count"])]
    ece = sum(int(r["count"]) / 800 * abs(float(r["gap"])) for r in filled)
    assert ece == pytest.approx(result.ece, abs=1e-5)
    assert (tmp_path / "reliability.png").stat().st_size > 5000

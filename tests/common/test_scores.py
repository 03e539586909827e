"""Precision, recall and F1, computed in one place (common.scores) for training and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from common.scores import macro_average, precision_recall_f1, safe_divide, support


def confusion_of(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def test_scores_match_scikit_learn_with_zero_division_0_also_for_a_class_without_samples():
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 4, 300), rng.integers(0, 5, 300)  # class 4 predicted, never true
    confusion = confusion_of(true, predicted, 5)
    precision, recall, f1 = precision_recall_f1(confusion)
    expected = precision_recall_fscore_support(true, predicted, labels=range(5), zero_division=0)
    for mine, theirs in zip((precision, recall, f1), expected[:3]):
        assert np.allclose(mine, theirs)
    assert list(support(confusion)) == list(expected[3]) and f1[4] == 0.0 and recall[4] == 0.0
    assert macro_average(f1, support(confusion)) == pytest.approx(
        f1_score(true, predicted, labels=range(4), average="macro", zero_division=0))


def test_a_stack_of_confusion_matrices_gives_each_its_scores():
    rng = np.random.default_rng(1)
    matrices = [confusion_of(rng.integers(0, 3, 50), rng.integers(0, 3, 50), 3) for _ in range(4)]
    stacked = np.stack(matrices, axis=-1)  # 4 x (K, K) -> (K, K, 4)
    together = precision_recall_f1(stacked)
    for index, matrix in enumerate(matrices):
        for joint, alone in zip(together, precision_recall_f1(matrix)):
            assert np.array_equal(joint[:, index], alone)


def test_undefined_ratios_are_0_and_a_macro_average_without_support_is_nan():
    assert safe_divide(np.array([1.0, 0.0]), np.array([0.0, 0.0])).tolist() == [0.0, 0.0]
    assert np.isnan(macro_average(np.array([0.5, 0.5]), np.array([0, 0])))
    assert macro_average(np.array([1.0, 0.2, 0.0]), np.array([3, 0, 1])) == 0.5

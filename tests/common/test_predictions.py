"""predictions.csv: exact round trip, and a clear error for every kind of damage."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import UserError
from common.predictions import Predictions, read_predictions, write_predictions

HEADER = "path,true_label,predicted_label,score:a,score:b\n"


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    original = Predictions([f"raw/{i}, odd \"name\".png" for i in range(50)], rng.integers(0, 3, 50),
                           probabilities, ["cat", "dog, big", "bird"])
    write_predictions(tmp_path / "predictions.csv", original)
    again = read_predictions(tmp_path / "predictions.csv")
    assert again.paths == original.paths and again.class_names == original.class_names
    np.testing.assert_array_equal(again.labels, original.labels)
    np.testing.assert_array_equal(again.probabilities, original.probabilities)  # bit for bit


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,label,score:a,score:b\n", r"predictions\.csv:1: expected the header path, true_label, predicted_label"),
        ("path,true_label,predicted_label,score:a\n", r":1: expected the header"),
        (HEADER, r"no predictions \(only a header\)"),
        (HEADER + "x.png,0,0,0.9\n", r"predictions\.csv:2: 4 fields, the header has 5"),
        (HEADER + "x.png,0,0,0.9,0.1\ny.png,zero,0,0.9,0.1\n", r"predictions\.csv:3: invalid literal for int"),
        (HEADER + "x.png,2,0,0.9,0.1\n", r":2: labels must be class indices 0\.\.1, got true_label 2"),
        (HEADER + "x.png,0,0,nan,0.1\n", r":2: scores must be finite numbers"),
        (HEADER + "x.png,0,1,0.9,0.1\n", r":2: predicted_label is not the class with the highest score"),
    ],
)
def test_damaged_files_name_file_and_row(tmp_path, content, message):
    path = tmp_path / "predictions.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_predictions(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="predictions file not found"):
        read_predictions(tmp_path / "nope.csv")

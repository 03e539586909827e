"""predictions.csv and evaluation.json: exact round trip, and every kind of damage reported with its row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import UserError
from common.results import (
    EvaluationRecord,
    Predictions,
    ResultFileError,
    read_evaluation_record,
    read_predictions,
    read_results,
    sum_tolerance_for,
    write_evaluation_record,
    write_predictions,
)

HEADER = "path,true_label,predicted_label,score:a,score:b\n"
GOOD = "x.png,0,0,0.9,0.1\n"


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


def test_a_thousand_classes_of_float32_softmax_sum_to_one_within_the_tolerance(tmp_path):
    logits = np.random.default_rng(1).normal(0, 8, (20, 1000)).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    write_predictions(tmp_path / "predictions.csv", Predictions([f"{i}.png" for i in range(20)], np.zeros(20, int),
                                                                probabilities, [f"c{i}" for i in range(1000)]))
    assert read_predictions(tmp_path / "predictions.csv").probabilities.shape == (20, 1000)


# Each damaged file gives exactly these problems, "<row>: <message>" (the file name is put in front).
DAMAGED = {
    "wrong fixed columns": ("path,label,score:a,score:b\n" + GOOD, [
        "1: expected the header path, true_label, predicted_label, then one 'score:<class name>' column per class "
        "(at least two); got ['path', 'label', 'score:a', 'score:b']"]),
    "one class": ("path,true_label,predicted_label,score:a\n", [
        "1: expected the header path, true_label, predicted_label, then one 'score:<class name>' column per class "
        "(at least two); got ['path', 'true_label', 'predicted_label', 'score:a']"]),
    "extra column": ("path,true_label,predicted_label,score:a,score:b,note\n" + "x.png,0,0,0.9,0.1,hi\n", [
        "1: column 6 'note' is not a 'score:<class name>' column; expected the header path, true_label, "
        "predicted_label, then one 'score:<class name>' column per class (at least two)"]),
    "duplicated score column": ("path,true_label,predicted_label,score:a,score:b,score:a\n" + "x.png,0,0,0.8,0.1,0.1\n",
                                ["1: column 6 'score:a' repeats column 4"]),
    "unnamed score column": ("path,true_label,predicted_label,score:a,score:\n" + GOOD,
                             ["1: column 5 'score:' names no class"]),
    "only a header": (HEADER, [": no predictions (only a header)"]),
    "short row": (HEADER + "x.png,0,0,0.9\n", ["2: 4 fields, the header has 5"]),
    "long row": (HEADER + "x.png,0,0,0.9,0.1,0.0\n", ["2: 6 fields, the header has 5"]),
    "absolute path": (HEADER + "/etc/passwd,0,0,0.9,0.1\n", [
        "2: path '/etc/passwd' is not relative to the data set folder (absolute, leaving it, empty or with '\\'); "
        "results name images as the list file does"]),
    "path leaving": (HEADER + "raw/../../secret.png,0,0,0.9,0.1\n", [
        "2: path 'raw/../../secret.png' is not relative to the data set folder (absolute, leaving it, empty or with "
        "'\\'); results name images as the list file does"]),
    "drive letter": (HEADER + "C:/x.png,0,0,0.9,0.1\n", [
        "2: path 'C:/x.png' is not relative to the data set folder (absolute, leaving it, empty or with '\\'); "
        "results name images as the list file does"]),
    "backslash": (HEADER + "raw\\x.png,0,0,0.9,0.1\n", [
        "2: path 'raw\\\\x.png' is not relative to the data set folder (absolute, leaving it, empty or with '\\'); "
        "results name images as the list file does"]),
    "duplicate path": (HEADER + GOOD + "y.png,1,1,0.2,0.8\n./x.png,0,0,0.9,0.1\n",
                       ["4: 'x.png' is listed twice (first on row 2)"]),
    "word label": (HEADER + GOOD + "y.png,zero,0,0.9,0.1\n",
                   ["3: true_label 'zero' is not a class index 0..1 (ASCII digits)"]),
    "label out of range": (HEADER + "x.png,2,0,0.9,0.1\n", ["2: true_label '2' is not a class index 0..1 (ASCII digits)"]),
    "negative predicted label": (HEADER + "x.png,0,-1,0.9,0.1\n",
                                 ["2: predicted_label '-1' is not a class index 0..1 (ASCII digits)"]),
    "Arabic-Indic digit": (HEADER + "x.png,\u0661,0,0.9,0.1\n",
                           ["2: true_label '\u0661' is not a class index 0..1 (ASCII digits)"]),
    "score not a number": (HEADER + "x.png,0,0,high,0.1\n", ["2: score:a 'high' is not a number"]),
    "NaN score": (HEADER + "x.png,0,0,nan,0.1\n", ["2: score:a is nan; scores are probabilities in [0, 1]"]),
    "negative score": (HEADER + "x.png,0,1,-5,7.5\n", ["2: score:a is -5; scores are probabilities in [0, 1]"]),
    "score above one": (HEADER + "x.png,0,1,0,7.5\n", ["2: score:b is 7.5; scores are probabilities in [0, 1]"]),
    "logits": (HEADER + "x.png,0,0,0.9,0.3\n", [
        "2: the scores sum to 1.2, not 1 (within 0.001); a row holds probabilities, not logits"]),
    "wrong predicted label": (HEADER + "x.png,0,1,0.9,0.1\n",
                              ["2: predicted_label is not the class with the highest score"]),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damage_is_reported_with_file_and_row(tmp_path, case):
    content, expected = DAMAGED[case]
    path = tmp_path / "predictions.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultFileError) as excinfo:
        read_predictions(path)
    assert excinfo.value.problems == [f"{path}{line}" if line.startswith(":") else f"{path}:{line}"
                                      for line in expected]


def test_every_problem_is_reported_at_once_in_row_order(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(HEADER + "x.png,0,0,0.9,0.1\n../y.png,0,0,0.9,0.1\nz.png,0,1,0.9,0.1\nx.png,0,0,-1,2\n"
                    "w.png,5,0,0.9,0.1\n")
    with pytest.raises(ResultFileError) as excinfo:
        read_predictions(path)
    rows = [int(problem[len(str(path)) + 1:].split(":")[0]) for problem in excinfo.value.problems]
    assert rows == [3, 4, 5, 5, 6]
    assert str(excinfo.value).startswith("5 problems in the result files:")


def test_a_byte_order_mark_is_stripped(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("\ufeff" + HEADER + GOOD, encoding="utf-8")  # as a spreadsheet saves "CSV UTF-8"
    assert read_predictions(path).class_names == ["a", "b"]


def record(**fields) -> EvaluationRecord:
    return EvaluationRecord(name="e", created="", class_names=["a", "b"], dataset_root="/data/ds", **fields)


@pytest.mark.parametrize(("classes", "expected"), [
    (["a", "b", "c"], "the score columns name 2 classes ['a', 'b'], but evaluation.json beside it names 3: "
                      "['a', 'b', 'c']"),
    (["b", "a"], "the score columns name 2 classes ['a', 'b'], but evaluation.json beside it names 2: ['b', 'a']"),
])
def test_score_columns_must_name_the_recorded_classes(tmp_path, classes, expected):
    (tmp_path / "predictions.csv").write_text(HEADER + GOOD)
    write_evaluation_record(tmp_path, record() if classes is None else EvaluationRecord(
        name="e", created="", class_names=classes))
    with pytest.raises(ResultFileError) as excinfo:
        read_results(tmp_path / "predictions.csv")
    assert excinfo.value.problems == [f"{tmp_path / 'predictions.csv'}:1: {expected}"]
    write_evaluation_record(tmp_path, record())
    predictions, found = read_results(tmp_path / "predictions.csv")
    assert found == record() and predictions.paths == ["x.png"]


@pytest.mark.parametrize(("data", "expected"), [
    ("[1, 2]", ["not an evaluation record of this project (no name)"]),
    ("{nope", None),
    ('{"name": "e", "colour": 1}', ["unknown field 'colour'"]),
    ('{"name": "e", "class_names": "ab"}', ["class_names: str is not of the recorded type"]),
    ('{"name": "e", "class_names": ["a", 2]}', ["class_names: expected a list of strings"]),
    ('{"name": "e", "dataset_root": "data/ds"}', ["dataset_root 'data/ds' is not an absolute path"]),
    ('{"name": "e", "model_sha256": "xyz"}', ["model_sha256 'xyz' is not a sha256 (64 hex digits)"]),
    ('{"name": "e", "dataset_root": 7, "skipped": [1]}',
     ["dataset_root: int is not of the recorded type", "skipped: expected a list of strings"]),
])
def test_a_damaged_evaluation_record_names_every_field(tmp_path, data, expected):
    (tmp_path / "evaluation.json").write_text(data)
    with pytest.raises(ResultFileError) as excinfo:
        read_evaluation_record(tmp_path)
    shown = f"{tmp_path / 'evaluation.json'}: "
    if expected is None:
        assert excinfo.value.problems[0].startswith(shown + "not JSON")
    else:
        assert excinfo.value.problems == [shown + text for text in expected]


def test_a_record_round_trips_and_keeps_older_layouts(tmp_path):
    write_evaluation_record(tmp_path, record(skipped=["raw/bad.png"]))
    assert read_evaluation_record(tmp_path) == record(skipped=["raw/bad.png"])
    (tmp_path / "evaluation.json").write_text(json.dumps({"name": "old"}))  # before `created` existed
    assert read_evaluation_record(tmp_path) == EvaluationRecord(name="old", created="")
    assert read_evaluation_record(tmp_path / "nothing") is None


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="predictions file not found"):
        read_predictions(tmp_path / "nope.csv")


def test_a_quantized_models_recorded_tolerance_is_the_one_applied(tmp_path):
    (tmp_path / "predictions.csv").write_text(HEADER + "x.png,0,0,0.996078,0\ny.png,1,1,0,0.992157\n")
    write_evaluation_record(tmp_path, record())
    with pytest.raises(ResultFileError) as excinfo:
        read_results(tmp_path / "predictions.csv")
    assert [p.split(": ", 1)[1] for p in excinfo.value.problems] == [
        "the scores sum to 0.996078, not 1 (within 0.001); a row holds probabilities, not logits",
        "the scores sum to 0.992157, not 1 (within 0.001); a row holds probabilities, not logits"]
    write_evaluation_record(tmp_path, record(sum_tolerance=0.0079))
    assert read_results(tmp_path / "predictions.csv")[0].paths == ["x.png", "y.png"]
    write_evaluation_record(tmp_path, record(sum_tolerance=0.005))
    with pytest.raises(ResultFileError, match=r":3: the scores sum to 0\.992157, not 1 \(within 0\.005\)"):
        read_results(tmp_path / "predictions.csv")


@pytest.mark.parametrize(("probabilities", "quantized", "expected"), [
    ([[0.3, 0.7], [0.5, 0.5]], False, None),
    ([[254 / 255, 0], [0.5, 0.5]], True, 0.004),  # 1 - 254/255 = 0.00392 rounded up
    ([[0.3, 0.7000004]], True, None),
    ([[0.3, 0.6]], False, "sum to as far as 0.1 from 1"),
    ([[-0.1, 1.1]], True, r"not in \[0, 1\] \(from -0.1 to 1.1\)"),
    ([[np.nan, 1]], False, r"not in \[0, 1\]"),
])
def test_a_models_outputs_are_checked_before_they_are_written(probabilities, quantized, expected):
    scores = np.array(probabilities, dtype=np.float32)
    if isinstance(expected, str):
        with pytest.raises(UserError, match=rf"model\.onnx: the model's probabilities .*{expected}"):
            sum_tolerance_for(scores, quantized, "model.onnx")
    else:
        assert sum_tolerance_for(scores, quantized, "model.onnx") == expected


def test_a_record_names_the_list_version_and_the_models_training_lists(tmp_path):
    training = {"train": {"path": "data/ds/lists/train.txt", "sha256": "ab" * 32, "samples": 9, "role": "train",
                          "version": 2}}
    full = record(list_sha256="cd" * 32, list_version=3, training_lists=training,
                  out_of_sample={"method": "cross-validation", "folds": 5, "runs": []})
    write_evaluation_record(tmp_path, full)
    assert read_evaluation_record(tmp_path) == full
    (tmp_path / "evaluation.json").write_text(json.dumps({"name": "e", "list_version": "3", "training_lists": []}))
    with pytest.raises(ResultFileError) as excinfo:
        read_evaluation_record(tmp_path)
    assert [p.split(": ", 1)[1] for p in excinfo.value.problems] == [
        "list_version: str is not of the recorded type", "training_lists: list is not of the recorded type"]

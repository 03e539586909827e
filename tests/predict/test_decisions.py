"""The decision rule and where its thresholds come from: a YAML file, an evaluation's operating points."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from common.results import EvaluationRecord, read_operating_points, write_evaluation_record
from predict.decisions import ABSTAIN, ThresholdFileError, Thresholds, decide

CLASSES = ["cat", "dog", "bird"]
SHA = "a" * 64


def test_the_top1_class_is_decided_at_or_above_its_threshold_else_abstains():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]], dtype=np.float32)
    top1, decided = decide(probabilities, np.array([np.float32(0.7), 0.9, math.inf]))
    assert top1.tolist() == [0, 0, 0, 2]  # ties: the lower class index
    assert decided.tolist() == [True, False, False, False]  # 0.7 >= 0.7; bird is never decided
    assert decide(probabilities, None)[1].all()


def test_a_threshold_file_names_every_class(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("cat: 0.9\ndog: 0\nbird: null\n")
    thresholds = Thresholds.from_file(path, CLASSES)
    assert thresholds.values == (0.9, 0.0, None)
    assert thresholds.to_record()["thresholds"] == {"cat": 0.9, "dog": 0.0, "bird": None}
    assert thresholds.source["kind"] == "file" and len(thresholds.source["sha256"]) == 64


@pytest.mark.parametrize(("text", "problems"), [
    ("cat: 0.9\ndog: 1.5\nbird: yes\n", ["dog: 1.5 is not a number in [0, 1] (or null)",
                                          "bird: True is not a number in [0, 1] (or null)"]),
    ("cat: 0.9\ndog: 0.5\n", ["bird: missing; every class needs a threshold (null: never decided)"]),
    ("cat: 0.9\ndog: 0.5\nbird: 0.1\nfish: 0.2\n", ["fish: not a class of the model (its classes: ['cat', 'dog', "
                                                    "'bird']; quote names that YAML would read as numbers or "
                                                    "booleans)"]),
])
def test_every_problem_of_a_threshold_file_is_named_with_its_key(tmp_path, text, problems):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdFileError) as excinfo:
        Thresholds.from_file(path, CLASSES)
    assert excinfo.value.problems == [f"{path}: {problem}" for problem in problems]


def test_a_threshold_file_that_is_not_a_mapping(tmp_path):
    (tmp_path / "t.yaml").write_text("- 0.5\n")
    with pytest.raises(UserError, match=r"t\.yaml: expected a mapping of class names to thresholds"):
        Thresholds.from_file(tmp_path / "t.yaml", CLASSES)


def write_evaluation(folder: Path, points: list, sha256: str | None = SHA, classes: list[str] = CLASSES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_evaluation_record(folder, EvaluationRecord(name=folder.name, created="", list="data/ds/lists/test.txt",
                                                     class_names=classes, model_sha256=sha256))
    rows = [{"class": name, "index": i, "operating_points": point} for i, (name, point) in enumerate(zip(classes,
                                                                                                         points))]
    (folder / "metrics.json").write_text(json.dumps({"per_class": rows}))
    return folder


def point(precision: dict, recall: dict | None = None) -> dict:
    return {"precision": precision, "recall": recall or {"0.95": None}}


def test_operating_points_are_read_per_class_with_unreachable_ones_never_decided(tmp_path):
    folder = write_evaluation(tmp_path / "e", [
        point({"0.95": {"threshold": 0.4, "precision": 0.96, "recall": 0.9}, "0.99": {"threshold": 0.8}}),
        point({"0.95": {"threshold": 0.3}, "0.99": None}),
        None])  # a class without samples
    points = read_operating_points(folder, "precision", 0.99)
    assert points.thresholds == [0.8, None, None] and points.model_sha256 == SHA
    thresholds = Thresholds.from_evaluation(folder, precision=0.99)
    assert thresholds.source["unreachable"] == ["dog", "bird"] and thresholds.model_sha256 == SHA
    thresholds.check_model(CLASSES, SHA, "model/m.onnx")
    with pytest.raises(UserError, match=r"an evaluation of another model \(sha256 aaaaaaaaaaaa\.\.\.\), but "
                                        r"model/m\.onnx has sha256 bbbbbbbbbbbb"):
        thresholds.check_model(CLASSES, "b" * 64, "model/m.onnx")


def test_a_target_the_evaluation_did_not_compute_says_how_to_add_it(tmp_path):
    folder = write_evaluation(tmp_path / "e", [point({"0.95": None, "0.99": None})] * 3)
    with pytest.raises(UserError) as excinfo:
        read_operating_points(folder, "precision", 0.98)
    assert "computed precision operating points for ['0.95', '0.99'], not 0.98" in str(excinfo.value)
    assert f"pipenv run evaluate score {folder / 'predictions.csv'} --precision-targets 0.95 0.99 0.98" in str(
        excinfo.value)


def test_predict_precision_0_9900004_is_not_the_computed_0_99_and_is_refused(tmp_path):
    folder = write_evaluation(tmp_path / "e", [point({"0.95": None, "0.99": None})] * 3)
    with pytest.raises(UserError, match=r"for \['0.95', '0.99'\], not 0.9900004"):
        read_operating_points(folder, "precision", 0.9900004)
    assert read_operating_points(folder, "precision", 0.99).target == 0.99


def test_predict_threshold_yaml_naming_a_class_twice_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("cat: 0.9\ndog: 0.5\nbird: 0.1\ncat: 0.99\n")  # the same key twice
    with pytest.raises(UserError, match="key 'cat' twice, lines 1 and 4"):
        Thresholds.from_file(path, CLASSES)
    path.write_text("'3': 0.5\n3: 0.99\n")  # two keys, one class
    with pytest.raises(ThresholdFileError, match="3: names the class '3' a second time"):
        Thresholds.from_file(path, ["3"])


def test_thresholds_from_a_list_are_one_clear_error():
    with pytest.raises(ThresholdFileError, match="expected a mapping of class name to threshold, got list"):
        Thresholds.from_mapping([0.5, 0.5, 0.5], CLASSES)  # type: ignore[arg-type]


def test_an_evaluation_without_the_model_sha256_is_refused(tmp_path):
    folder = write_evaluation(tmp_path / "e", [point({"0.95": None})] * 3, sha256=None)
    with pytest.raises(UserError, match="no model_sha256: .* Evaluate the model again: pipenv run evaluate --model "
                                        r"<model> --list data/ds/lists/test\.txt"):
        read_operating_points(folder, "precision", 0.95)


def test_damaged_metrics_are_named(tmp_path):
    folder = write_evaluation(tmp_path / "e", [point({"0.95": {"threshold": 2}})] * 3)
    with pytest.raises(UserError, match=r"per_class\[0\]\.operating_points\.precision\.0\.95: threshold 2 is not a "
                                        r"number in \[0, 1\]"):
        read_operating_points(folder, "precision", 0.95)
    write_evaluation(folder, [point({"0.95": None})] * 2, classes=["cat", "dog"])
    (folder / "evaluation.json").write_text(json.dumps({"name": "e", "class_names": CLASSES, "model_sha256": SHA}))
    with pytest.raises(UserError, match=r"per_class names the classes \['cat', 'dog'\], but evaluation\.json"):
        read_operating_points(folder, "precision", 0.95)
    with pytest.raises(UserError, match="not an evaluation folder"):
        read_operating_points(tmp_path / "nothing", "precision", 0.95)


def test_exactly_one_target(tmp_path):
    with pytest.raises(UserError, match="exactly one target"):
        Thresholds.from_evaluation(tmp_path, precision=0.9, recall=0.9)
    assert ABSTAIN == "abstain"

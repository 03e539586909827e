"""What the reports say: the headline, the training-to-test gap, the bad cases (runner-up,
network input), classes without test samples, and the bootstrap option."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import binomtest
from sklearn import metrics as reference

from common.contract import InputContract
from common.errors import UserError
from common.images import load_image
from common.results import read_predictions
from evaluate.evaluation import EvaluateOptions, evaluate, rescore
from tests.evaluate.conftest import CONTRACT, card_for

TRAINING = {"epoch": 37, "metrics": {"train/loss": 0.05, "train/accuracy": 0.99, "val/loss": 0.04,
                                     "val/accuracy": 0.994}, "best": {"metric": "val/loss", "value": 0.04, "epoch": 37}}


def evaluated(make_model, digits_root: Path, **options) -> Path:
    card = card_for("centroids", [str(d) for d in range(10)], CONTRACT)
    card["training"] = TRAINING
    model = make_model(card=card)
    return evaluate(EvaluateOptions(model=model, list=digits_root / "lists" / "test.txt", progress=False,
                                    **options)).folder


@pytest.mark.slow
def test_the_report_opens_with_computed_sentences(make_model, digits_root):
    folder = evaluated(make_model, digits_root)
    predictions = read_predictions(folder / "predictions.csv")
    labels, predicted = predictions.labels, predictions.predicted
    right, count = int((labels == predicted).sum()), len(labels)
    accuracy = right / count
    wilson = binomtest(right, count).proportion_ci(0.95, method="wilson")
    f1 = reference.f1_score(labels, predicted, average=None)
    worst = int(np.argmin(f1))
    matrix = reference.confusion_matrix(labels, predicted)
    np.fill_diagonal(matrix, 0)
    true, wrong = np.unravel_index(np.argmax(matrix), matrix.shape)
    metrics = json.loads((folder / "metrics.json").read_text())
    expected = [
        f"Accuracy {accuracy:.1%}: {right} of {count} test images right (95% interval {wilson.low:.1%} to "
        f"{wilson.high:.1%}, Wilson).",
        f"Validation accuracy at the exported checkpoint (epoch 37) was 99.4%: test accuracy is "
        f"{(0.994 - accuracy) * 100:.1f} points lower, outside the test's 95% interval",
        f"Worst class: {worst} (F1 {f1[worst]:.3f} [",
        f"Most frequent confusion: true {true} predicted as {wrong}, {matrix[true, wrong]} time(s)",
        f"Calibration: ECE {metrics['calibration']['ece']:.3f} (15 bins; 0 is perfect), overconfident",
    ]
    text = (folder / "result.txt").read_text().splitlines()
    for line, start in zip(text, expected):
        assert line.startswith(start)
    html = (folder / "report.html").read_text()
    assert html.index('<div class="headline">') < html.index("<table")
    assert all(sentence.split(" (")[0] in html for sentence in expected)
    # the card's training figures beside the test figures, with the gap
    assert f"<td>{accuracy:.4f} [{wilson.low:.3f}, {wilson.high:.3f}]</td><td>{accuracy - 0.994:+.4f}</td>" in html
    assert f"<td>{metrics['calibration']['nll'] - 0.04:+.4f}</td>" in html
    assert metrics["accuracy_interval"] == pytest.approx([wilson.low, wilson.high], abs=1e-12)
    assert metrics["uncertainty"]["bootstrap"]["resamples"] == 1000
    assert all(len(row["f1_interval"]) == 2 for row in metrics["per_class"])


@pytest.mark.slow
def test_bad_cases_name_the_runner_up_and_show_the_network_input(make_model, digits_root, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(evaluated(make_model, digits_root), folder)
    # height 5, width 4, colour: not the files' 8 x 8 grey
    contract = InputContract("RGB", 5, 4, "bilinear", (0.0,) * 3, (1.0,) * 3)
    record = json.loads((folder / "evaluation.json").read_text())
    record["input_contract"] = contract.to_dict()
    (folder / "evaluation.json").write_text(json.dumps(record))
    shutil.rmtree(folder / "thumbs")
    rescore(folder / "predictions.csv", options=EvaluateOptions(image_roots=(digits_root,)))  # trusted: thumbnails
    predictions = read_predictions(folder / "predictions.csv")
    row_of = {path: row for row, path in enumerate(predictions.paths)}
    cases = list(csv.DictReader((folder / "bad_cases.csv").open()))
    assert {case["list"] for case in cases} == {"confident_mistake", "pair_mistake", "unsure_correct"}
    for case in cases:
        row = row_of[case["path"]]
        scores = predictions.probabilities[row]
        ranking = sorted(range(10), key=lambda c: (-scores[c], c))
        assert int(case["predicted_label"]) == ranking[0] and int(case["runner_up_label"]) == ranking[1]
        assert case["runner_up_class"] == str(ranking[1])
        assert float(case["margin"]) == pytest.approx(scores[ranking[0]] - scores[ranking[1]], abs=1e-6)
        seen = np.asarray(Image.open(folder / "thumbs" / f"{row}-input.png"))
        expected = load_image(Path(record["dataset_root"]) / case["path"], contract)
        assert seen.shape == (5, 4, 3) and np.array_equal(seen, expected.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)
    html = (folder / "bad_cases.html").read_text()
    row = row_of[cases[-1]["path"]]
    assert f'src="thumbs/{row}.png"' in html and f'src="thumbs/{row}-input.png"' in html
    assert "network input 4\u00d75" in html and "runner-up: " in html


@pytest.mark.slow
def test_classes_without_test_samples_are_flagged_and_left_out_of_macro(make_model, digits_root, tmp_path):
    source = evaluated(make_model, digits_root)
    lines = (source / "predictions.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[1] != "9"]
    (tmp_path / "predictions.csv").write_text("\n".join(kept) + "\n")
    metrics = rescore(tmp_path / "predictions.csv").metrics
    predictions = read_predictions(tmp_path / "predictions.csv")
    labels, predicted = predictions.labels, predictions.predicted
    assert metrics["classes_without_samples"] == ["9"]
    assert metrics["macro"]["f1"] == pytest.approx(
        reference.f1_score(labels, predicted, labels=range(9), average="macro", zero_division=0), abs=1e-12)
    assert metrics["macro_all_classes"]["f1"] == pytest.approx(
        reference.f1_score(labels, predicted, labels=range(10), average="macro", zero_division=0), abs=1e-12)
    missing = metrics["per_class"][9]
    assert missing["f1_interval"] is None and missing["operating_points"] is None
    text = (tmp_path / "result.txt").read_text()
    assert "9 (no test samples)" in text and "1 class(es) have no test samples (9)" in text
    assert "No test samples for 9" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_the_bootstrap_can_be_turned_off_and_is_validated(make_model, digits_root, tmp_path):
    folder = evaluated(make_model, digits_root, bootstrap=0, name="quick")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["uncertainty"]["bootstrap"] is None and "f1_interval" not in metrics["macro"]
    assert "no bootstrap intervals (--bootstrap 0)" in (folder / "report.html").read_text()
    again = rescore(folder / "predictions.csv", tmp_path / "seeded", EvaluateOptions(bootstrap=200, seed=7))
    assert again.metrics["uncertainty"]["bootstrap"] == {**again.metrics["uncertainty"]["bootstrap"],
                                                         "resamples": 200, "seed": 7}
    with pytest.raises(UserError, match=r"--bootstrap and --seed must be at least 0.*--bootstrap -1"):
        rescore(folder / "predictions.csv", tmp_path / "bad", EvaluateOptions(bootstrap=-1))

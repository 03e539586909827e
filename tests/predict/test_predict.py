"""``pipenv run predict`` end to end: bitwise evaluate's probabilities, operating points, the outputs, hostile names."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.results import read_operating_points
from predict import Classifier
from predict.decisions import ABSTAIN
from predict.output import read_record
from predict.rows import read_rows, read_unreadable
from predict.run import PredictOptions, predict
from tests.evaluate.conftest import CONTRACT, card_for, centroid_model
from tests.predict.runs import evaluation_probabilities, output_root, probabilities_by_path, run_predict, snapshot

DIGITS = [str(d) for d in range(10)]


@pytest.mark.slow
def test_predict_on_a_mixed_folder_matches_evaluate_bitwise_with_and_without_an_operating_point(
        models, mixed, evaluation, capsys):
    before = snapshot(mixed)
    status, out, err = run_predict([str(mixed / "raw"), "--model", str(models.model), "--top-k", "10", "--name",
                                    "plain", "--no-progress"], capsys)
    assert status == 0, err
    plain = output_root() / "plain"
    expected = evaluation_probabilities(evaluation, mixed)
    got = probabilities_by_path(plain, DIGITS)
    assert got.keys() == expected.keys() and len(got) == 160  # every readable image; notes.txt is no image
    for path, values in expected.items():
        assert np.array_equal(got[path], values), path  # bitwise
    # the Python API on the same files, and a run with other batches and threads: the same bits
    api = Classifier.load(models.model, top_k=10).predict(sorted(expected))
    assert all(np.array_equal(r.probabilities, expected[r.source]) for r in api)
    predict(PredictOptions(inputs=(str(mixed / "raw"),), model=models.model, top_k=10, name="odd", batch_size=7,
                           workers=1, threads=1, progress=False))
    assert probabilities_by_path(output_root() / "odd", DIGITS).keys() == got.keys()
    assert all(np.array_equal(v, got[p]) for p, v in probabilities_by_path(output_root() / "odd", DIGITS).items())
    assert read_unreadable(plain) == [(str(mixed / "raw" / "broken.jpg"), read_unreadable(plain)[0][1])]
    assert "160 image(s) predicted: 160 decided (0 " in out and "1 unreadable (listed in unreadable.csv)" in out
    assert snapshot(mixed) == before  # nothing written beside the inputs

    status, out, err = run_predict([str(mixed / "raw"), "--model", str(models.model), "--top-k", "10", "--name",
                                    "strict", "--operating-point", str(evaluation), "--precision", "0.99",
                                    "--no-progress"], capsys)
    assert status == 0, err
    strict = output_root() / "strict"
    assert all(np.array_equal(v, expected[p]) for p, v in probabilities_by_path(strict, DIGITS).items())
    thresholds = read_operating_points(evaluation, "precision", 0.99).thresholds
    record = read_record(strict)
    assert record.decision["thresholds"] == dict(zip(DIGITS, thresholds))
    assert record.decision["source"]["target"] == {"precision": 0.99}
    abstained = 0
    for row in read_rows(strict, "csv", 10, DIGITS):
        best = int(row.classes[0])
        decided = thresholds[best] is not None and np.float32(row.probabilities[0]) >= thresholds[best]
        assert (row.decision == row.classes[0]) if decided else (row.decision == ABSTAIN and row.label is None)
        abstained += not decided
    assert 0 < abstained < 160 and record.summary["abstained"] == abstained
    assert f"{abstained} abstained" in out and sum(record.summary["decided"].values()) == 160 - abstained
    # on the evaluation's own images, each class decided at its threshold reaches the target precision
    truth = {str(mixed / line.rsplit(" ", 1)[0]): line.rsplit(" ", 1)[1]
             for line in (mixed / "lists" / "test.txt").read_text().splitlines()}
    for name in DIGITS:
        decided = [row for row in read_rows(strict, "csv", 10, DIGITS) if row.decision == name]
        if decided:
            assert sum(truth[row.path] == name for row in decided) / len(decided) >= 0.99, name


@pytest.mark.slow
def test_the_output_folder_holds_every_file_and_the_record_says_how_it_was_made(models, mixed, capsys):
    status, out, err = run_predict([str(mixed / "raw" / "3"), str(mixed / "raw" / "5"), "--model",
                                    str(models.model), "--rank", "uncertainty", "--format", "jsonl", "--no-progress"],
                                   capsys)
    assert status == 0, err
    folder = output_root() / "digits-3"  # <model>-<first input>
    assert {p.name for p in folder.iterdir()} == {"predictions.jsonl", "unreadable.csv", "prediction.json",
                                                  "report.html", "thumbs", "to_label.txt"}
    record = json.loads((folder / "prediction.json").read_text())
    assert record["model_sha256"] == read_record(folder).model_sha256 and len(record["model_sha256"]) == 64
    assert record["providers"] == ["CPUExecutionProvider"] and record["status"] == "complete"
    assert record["inputs_given"] == [str(mixed / "raw" / "3"), str(mixed / "raw" / "5")]
    assert record["top_k"] == 5 and record["shard"] is None and record["decision"]["thresholds"] is None
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == record["images"] == record["summary"]["predicted"] and len(rows[0]["top"]) == 5
    lines = (folder / "to_label.txt").read_text().splitlines()
    assert lines[0].startswith("# to_label.txt") and json.loads(lines[3].split(": ", 1)[1]) == DIGITS
    entries = [line.rsplit(" ", 1) for line in lines if not line.startswith("#")]
    margins = {row["path"]: np.float32(row["top"][0]["probability"]) - np.float32(row["top"][1]["probability"])
               for row in rows}  # in float32, as the model gave them
    assert [path for path, _ in entries] == sorted(margins, key=lambda p: (margins[p], p))  # most uncertain first
    assert all(label == next(r for r in rows if r["path"] == path)["top"][0]["class"] for path, label in entries)
    assert f"to label: {folder / 'to_label.txt'}" in out


class _Text(HTMLParser):
    """The text and attribute values of a page, as a browser would show them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.slow
def test_hostile_file_and_class_names_are_safe_in_the_report_the_csv_and_to_label(digits_root, tmp_path, capsys):
    classes = ["<script>alert(1)</script>", 'a,"b"', "new\nline", *(f"c{i}" for i in range(7))]
    model = centroid_model(tmp_path / "hostile.onnx", digits_root, card=card_for("hostile", classes, CONTRACT))
    folder = tmp_path / "in"
    folder.mkdir()
    names = ['<img src=x onerror=alert(1)>.png', 'comma,"quote".png', "line\nbreak.png", "ünï cödé.png"]
    for name in names:
        Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(folder / name)
    status, _, err = run_predict([str(folder), "--model", str(model), "--rank", "uncertainty", "--top-k", "10",
                                  "--name", "hostile", "--no-progress"], capsys)
    assert status == 0, err
    out = output_root() / "hostile"
    rows = list(read_rows(out, "csv", 10, classes))
    assert sorted(Path(row.path).name for row in rows) == sorted(names)
    page = (out / "report.html").read_text()
    parsed = _Text()
    parsed.feed(page)
    assert "script" not in parsed.tags and "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    to_label = (out / "to_label.txt").read_text()
    assert "# left out: 1 image(s) whose names cannot go in a list file" in to_label
    assert len([line for line in to_label.splitlines() if not line.startswith("#")]) == 3


@pytest.mark.slow
def test_a_threshold_file_decides_per_class(models, mixed, tmp_path, capsys):
    (tmp_path / "t.yaml").write_text("".join(f"'{d}': {0.5 if d != '7' else 'null'}\n" for d in DIGITS))
    status, out, err = run_predict([str(mixed / "raw"), "--model", str(models.model), "--threshold",
                                    str(tmp_path / "t.yaml"), "--name", "t", "--no-progress"], capsys)
    assert status == 0, err
    record = read_record(output_root() / "t")
    assert record.decision["thresholds"]["7"] is None and record.decision["source"]["kind"] == "file"
    rows = list(read_rows(output_root() / "t", "csv", 5, DIGITS))
    assert all(row.decision == ABSTAIN for row in rows if row.classes[0] == "7")
    assert all((row.decision == ABSTAIN) == (row.probabilities[0] < 0.5) for row in rows if row.classes[0] != "7")
    assert record.summary["decided"]["7"] == 0 and record.summary["abstained_by_top1_class"]["7"] > 0
    assert re.search(r"\d+ abstained", out)

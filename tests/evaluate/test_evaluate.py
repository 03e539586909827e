"""The evaluation stage on the bundled digits with a torch-free model: every output, every bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from common.errors import UserError
from common.images import load_samples
from common.lists import load_dataset, read_split
from evaluate.evaluation import EvaluateOptions, evaluate, newest_model, rescore
from tests.evaluate.conftest import CONTRACT, card_for

EXPECTED_FILES = {
    "predictions.csv", "metrics.json", "evaluation.json", "result.txt", "report.html", "pr_curves.png",
    "pr_curves.csv", "confusion_counts_rows-true_cols-predicted.png", "confusion_counts_rows-true_cols-predicted.csv",
    "confusion_normalized_rows-true_cols-predicted.png", "confusion_normalized_rows-true_cols-predicted.csv",
    "bad_cases.html", "bad_cases.png", "bad_cases.csv", "thumbs", "reliability.png", "reliability.csv",
}


def run(model: Path, digits_root: Path, **changes) -> Path:
    options = EvaluateOptions(model=model, list=digits_root / "lists" / "test.txt", progress=False, **changes)
    return evaluate(options).folder


def eval_root() -> Path:
    return Path(os.environ["IMAGEPIPE_OUTPUT"]) / "eval"


@pytest.mark.slow
def test_evaluation_writes_every_output_and_the_numbers_are_right(make_model, digits_root):
    model = make_model()
    folder = run(model, digits_root)
    assert folder == eval_root() / "centroids-test"
    assert {p.name for p in folder.iterdir()} == EXPECTED_FILES
    # predictions are exactly what onnxruntime computes on the shared preprocessing
    dataset = load_dataset(digits_root)
    images, labels, _ = load_samples(dataset, read_split(dataset, "test"), CONTRACT)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = session.run(["probabilities"], {"images": images})[0]
    rows = list(csv.reader((folder / "predictions.csv").open()))
    assert rows[0][:3] == ["path", "true_label", "predicted_label"] and rows[0][3] == "score:0"
    got = np.array([[float(v) for v in row[3:]] for row in rows[1:]], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    metrics = json.loads((folder / "metrics.json").read_text())
    accuracy = float((expected.argmax(axis=1) == labels).mean())
    assert metrics["accuracy"] == pytest.approx(accuracy) and 0.8 < accuracy < 1.0  # a real, imperfect model
    assert metrics["samples"] == 360 and len(metrics["per_class"]) == 10
    assert set(metrics["per_class"][0]["operating_points"]["precision"]) == {"0.95", "0.99"}
    assert "accuracy: " in (folder / "result.txt").read_text()
    assert (folder / "confusion_counts_rows-true_cols-predicted.csv").read_text().startswith("true \\ predicted,0,1")
    bad = list(csv.DictReader((folder / "bad_cases.csv").open()))
    mistakes = [r for r in bad if r["list"] == "confident_mistake"]
    assert mistakes and all(r["true_label"] != r["predicted_label"] for r in mistakes)
    scores = [float(r["predicted_score"]) for r in mistakes]
    assert scores == sorted(scores, reverse=True)
    html = (folder / "bad_cases.html").read_text()
    assert "thumbs/" in html and "<script" not in html
    context = json.loads((folder / "evaluation.json").read_text())
    assert context["skipped"] == [] and context["input_contract"] == CONTRACT.to_dict()


@pytest.mark.slow
def test_rescoring_the_result_file_alone_gives_the_same_metrics(make_model, digits_root, tmp_path):
    folder = run(make_model(), digits_root)
    original = (folder / "metrics.json").read_text()
    lonely = tmp_path / "elsewhere"
    lonely.mkdir()
    shutil.copy(folder / "predictions.csv", lonely / "predictions.csv")  # no evaluation.json, no images
    result = rescore(lonely / "predictions.csv")
    assert json.loads((lonely / "metrics.json").read_text()) == json.loads(original)
    assert "Images not found" in (lonely / "bad_cases.html").read_text()
    in_place = rescore(folder / "predictions.csv", options=EvaluateOptions(precision_targets=(0.5,)))
    assert in_place.folder == folder
    assert set(json.loads((folder / "metrics.json").read_text())["per_class"][0]["operating_points"]["precision"]) == {"0.5"}
    assert result.metrics["accuracy"] == json.loads(original)["accuracy"]


def test_a_model_without_a_card_is_refused(make_model, digits_root):
    import onnx

    model = make_model()
    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    onnx.save(proto, str(model))
    with pytest.raises(UserError, match=r"no 'imagepipe\.model_card' in the model's metadata"):
        run(model, digits_root)
    assert not eval_root().exists()


@pytest.mark.slow
def test_a_contract_that_does_not_fit_the_graph_is_refused(make_model, digits_root):
    from common.contract import InputContract

    rgb = InputContract("RGB", 8, 8, "nearest", (0.0,) * 3, (1.0,) * 3)
    model = make_model(card=card_for("liar", [str(d) for d in range(10)], rgb))
    with pytest.raises(UserError, match=r"the graph's input takes 1 channel.* card's input contract gives 3 channel"):
        run(model, digits_root)
    assert not eval_root().exists()


@pytest.mark.slow
def test_classes_that_differ_from_the_models_are_refused(make_model, digits_root, tmp_path):
    other = tmp_path / "letters"
    shutil.copytree(digits_root, other)
    (other / "classes.txt").write_text("".join(f"{c}\n" for c in "abcdefghijkl"))
    with pytest.raises(UserError, match=r"classes\.txt has 12 classes but the model .* has 10; they first differ at position 0 \(0-based\): 'a' vs '0'"):
        evaluate(EvaluateOptions(model=make_model(), list=other / "lists" / "test.txt", progress=False))


@pytest.mark.parametrize(("content", "message"), [
    ("", r"test\.txt: no samples"),
    ("raw/0/0000.png 0\nraw/0/gone.png 0\n", r"test\.txt:2: image not found"),
    ("raw/0/0000.png 10\n", r"test\.txt:1: label 10 is outside 0\.\.9"),
])
def test_bad_lists_are_refused_before_anything_is_written(make_model, digits_root, tmp_path, content, message):
    copy = tmp_path / "copy"
    shutil.copytree(digits_root, copy)
    (copy / "lists" / "test.txt").write_text(content)
    with pytest.raises(UserError, match=message):
        evaluate(EvaluateOptions(model=make_model(), list=copy / "lists" / "test.txt", progress=False))
    assert not eval_root().exists()


@pytest.mark.slow
def test_an_unreadable_image_leaves_no_half_written_output(make_model, digits_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(digits_root, copy)
    victim = read_split(load_dataset(copy), "test")[200]
    (copy / victim.path).write_bytes(b"garbage")
    options = EvaluateOptions(model=make_model(), list=copy / "lists" / "test.txt", progress=False, batch_size=64)
    with pytest.raises(UserError, match=rf"test\.txt:{victim.line}: cannot decode .*; fix or remove the line"):
        evaluate(options)
    assert not eval_root().exists() or not list(eval_root().iterdir())  # no staging folder left either
    skipped = evaluate(EvaluateOptions(**{**options.__dict__, "on_unreadable": "skip"}))
    assert skipped.metrics["samples"] == 359
    assert json.loads((skipped.folder / "evaluation.json").read_text())["skipped"] == [victim.path]


@pytest.mark.slow
def test_an_existing_evaluation_is_never_overwritten_silently(make_model, digits_root):
    model = make_model()
    folder = run(model, digits_root)
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    with pytest.raises(UserError, match=r"centroids-test already exists; choose another --name, or pass --overwrite"):
        run(model, digits_root)
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp
    assert run(model, digits_root, overwrite=True) == folder
    assert run(model, digits_root, name="again").name == "again"


@pytest.mark.slow
def test_the_newest_model_is_the_default(make_model, digits_root, monkeypatch, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("IMAGEPIPE_MODEL", str(models))
    with pytest.raises(UserError, match="no model in .*pipenv run export"):
        newest_model()
    for name, created in (("old", "2026-01-01T00:00:00+00:00"), ("new", "2026-06-01T00:00:00+00:00")):
        card = card_for(name, [str(d) for d in range(10)], CONTRACT)
        card["created"] = created
        shutil.copy(make_model(name, card=card), models / f"{name}.onnx")
        (models / f"{name}.json").write_text(json.dumps(card))
    int8 = {**card, "name": "new-int8", "export": {"quantization": {"mode": "static"}}}
    shutil.copy(models / "new.onnx", models / "new-int8.onnx")
    (models / "new-int8.json").write_text(json.dumps(int8))
    assert newest_model() == models / "new.onnx"
    result = evaluate(EvaluateOptions(list=digits_root / "lists" / "test.txt", progress=False))
    assert result.folder.name == "new-test"

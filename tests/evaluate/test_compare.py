"""compare: metric deltas, overlaid curves and the samples that flipped."""

from __future__ import annotations

import csv
import json
import shutil
from html import escape

import numpy as np
import pytest
from scipy.stats import binomtest

from common.errors import UserError
from common.results import read_predictions
from evaluate.compare import compare_evaluations
from evaluate.evaluation import EvaluateOptions, evaluate


@pytest.mark.slow
def test_compare_two_models_on_the_same_list(make_model, digits_root):
    test_list = digits_root / "lists" / "test.txt"
    a = evaluate(EvaluateOptions(model=make_model("few", train_images=60), list=test_list, progress=False)).folder
    b = evaluate(EvaluateOptions(model=make_model("all"), list=test_list, progress=False)).folder
    result = compare_evaluations(a, b, image_roots=(digits_root,))  # the evaluations' data set, named: thumbnails
    assert result.folder.name == "compare-few-test-vs-all-test"
    assert {"compare.json", "compare.txt", "compare.html", "pr_overlay.png", "pr_overlay.csv", "flips.csv"} <= {
        p.name for p in result.folder.iterdir()}
    pred_a, pred_b = read_predictions(a / "predictions.csv"), read_predictions(b / "predictions.csv")
    right_a = pred_a.predicted == pred_a.labels
    right_b = pred_b.predicted == pred_b.labels
    summary = json.loads((result.folder / "compare.json").read_text())
    assert summary["fixed"] == int((~right_a & right_b).sum()) > 0
    assert summary["broken"] == int((right_a & ~right_b).sum())
    assert summary["deltas"]["accuracy"]["delta"] == pytest.approx(right_b.mean() - right_a.mean())
    flips = list(csv.DictReader((result.folder / "flips.csv").open()))
    assert len(flips) == summary["fixed"] + summary["broken"]
    fixed = [f for f in flips if f["flip"] == "fixed"]
    assert all(f["predicted_a"] != f["true_label"] == f["predicted_b"] for f in fixed)
    assert "thumbs/" in (result.folder / "compare.html").read_text()
    with pytest.raises(UserError, match="already exists"):
        compare_evaluations(a, b)
    # the verdict: McNemar's exact test is scipy's two-sided binomial test on the flips
    verdict = summary["verdict"]
    fixed, broken = summary["fixed"], summary["broken"]
    p_value = binomtest(fixed, fixed + broken, 0.5).pvalue
    assert verdict["accuracy"]["p_value"] == pytest.approx(p_value, rel=1e-9) and p_value < 0.05
    assert verdict["accuracy"]["differs"] and verdict["macro_f1"]["differs"]
    low, high = verdict["macro_f1"]["interval"]
    assert 0 < low < summary["deltas"]["macro_f1"]["delta"] < high
    text = (result.folder / "compare.txt").read_text()
    assert text.startswith("Verdict: B differs from A at 95% on accuracy (better), Macro F1 (better)")
    flips = f"{fixed + broken} flipped images ({fixed} fixed, {broken} broken)"
    assert f"McNemar exact p = {p_value:.4g} on {flips}" in text
    html = (result.folder / "compare.html").read_text()
    assert html.index("Verdict: B differs") < html.index("<table")


@pytest.mark.slow
def test_a_model_compared_with_itself_shows_no_difference(make_model, digits_root):
    test_list = digits_root / "lists" / "test.txt"
    model = make_model()
    a = evaluate(EvaluateOptions(model=model, list=test_list, progress=False, name="one")).folder
    b = evaluate(EvaluateOptions(model=model, list=test_list, progress=False, name="two")).folder
    summary = compare_evaluations(a, b, bootstrap=100).summary
    assert summary["verdict"]["accuracy"]["p_value"] == 1.0
    assert summary["verdict"]["macro_ap"] == {**summary["verdict"]["macro_ap"], "interval": [0.0, 0.0],
                                              "differs": False}
    assert summary["sentences"][0] == "Verdict: no difference between A and B is shown at 95%."
    no_bootstrap = compare_evaluations(a, b, name="quick", bootstrap=0).summary
    assert "macro_f1" not in no_bootstrap["verdict"] and "no paired bootstrap" in no_bootstrap["sentences"][-1]
    with pytest.raises(UserError, match="--bootstrap and --seed must be at least 0"):
        compare_evaluations(a, b, name="bad", seed=-2)


@pytest.mark.slow
def test_compare_refuses_evaluations_of_different_lists(make_model, digits_root, tmp_path):
    model = make_model()
    a = evaluate(EvaluateOptions(model=model, list=digits_root / "lists" / "test.txt", progress=False)).folder
    b = evaluate(EvaluateOptions(model=model, list=digits_root / "lists" / "val.txt", progress=False)).folder
    with pytest.raises(UserError, match="are not of the same samples"):
        compare_evaluations(a, b)
    relabelled = tmp_path / "relabelled"
    shutil.copytree(a, relabelled)
    rows = (relabelled / "predictions.csv").read_text().splitlines()
    fields = rows[1].split(",")
    fields[1] = str((int(fields[1]) + 1) % 10)
    scores = np.array([float(v) for v in fields[3:]])
    fields[2] = str(int(scores.argmax()))
    rows[1] = ",".join(fields)
    (relabelled / "predictions.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(UserError, match=r"has label \d in .* but \d in"):
        compare_evaluations(a, relabelled)
    with pytest.raises(UserError, match="not an evaluation folder"):
        compare_evaluations(a, tmp_path / "nothing")


def test_evaluations_of_two_versions_of_a_list_are_compared_with_a_warning(tmp_path):
    from common.results import EvaluationRecord, Predictions, write_evaluation_record, write_predictions

    rng = np.random.default_rng(0)
    folders = []
    for name, digest, version in (("a", "11" * 32, 1), ("b", "22" * 32, 2)):
        folder = tmp_path / name
        folder.mkdir()
        probabilities = rng.dirichlet(np.ones(3), 12).astype(np.float32)
        write_predictions(folder / "predictions.csv", Predictions([f"raw/{i}.png" for i in range(12)],
                                                                  np.arange(12) % 3, probabilities, ["x", "y", "z"]))
        write_evaluation_record(folder, EvaluationRecord(name=name, created="", list="data/ds/lists/test.txt",
                                                         class_names=["x", "y", "z"], list_sha256=digest,
                                                         list_version=version))
        folders.append(folder)
    result = compare_evaluations(*folders, bootstrap=0)
    (warning,) = result.summary["warnings"]
    assert warning.startswith("warning: A evaluated data/ds/lists/test.txt v1 but B evaluated data/ds/lists/test.txt "
                              "v2: the list changed between the two evaluations")
    assert warning in (result.folder / "compare.txt").read_text()
    assert f'<p class="warn">{escape(warning)}' in (result.folder / "compare.html").read_text()
    write_predictions(folders[1] / "predictions.csv", Predictions(["raw/other.png"], np.array([0]),
                                                                  np.array([[1, 0, 0]], np.float32), ["x", "y", "z"]))
    with pytest.raises(UserError, match=r"are not of the same samples .* warning: A evaluated .* v1 but B .* v2"):
        compare_evaluations(*folders, name="again", bootstrap=0)

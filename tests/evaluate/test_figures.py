"""The figure seam: a figure registered in one module (here, in a test) reaches every output.

metrics.json, result.txt, report.html and every part of ``evaluate compare`` are laid
out from the registered figures, so a toy figure registered here, with no other module
touched, must show up in all of them; the docs' "Adding a figure" example is run as written.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.errors import UserError
from common.paths import PROJECT_ROOT
from common.results import EvaluationRecord, Predictions, write_predictions
from common.thumbnails import Thumbnails
from evaluate.badcases import select_cases
from evaluate.compare import compare_evaluations, compare_text, deltas
from evaluate.evaluation import EvaluateOptions, rescore
from evaluate.figures import FIGURES, build_figures, register_figure
from evaluate.figures.base import Evidence, Figure, FigureValue
from evaluate.figures.kinds import PerClassFigure, per_class_value
from evaluate.report import report_body, result_text
from evaluate.scoring import metrics_json, score, with_intervals
from evaluate.verdict import verdict
from tests.evaluate.test_metrics import predictions

NAMES = ["cat", "dog", "bird", "eel"]


def two_models(count: int = 240, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of 4 classes (the last without samples) and the scores of a weak model A and a better model B."""
    labels, weak = predictions(count, 4, seed)
    labels[labels == 3] = 0
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=weak.shape)
    logits[np.arange(count), labels] += 3.0
    strong = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, weak, strong.astype(np.float32)


def rendered(labels: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int = 200) -> dict[str, Any]:
    """Every output of evaluating A and of comparing B with A, rendered in memory (no files, no plots)."""
    scores_a = with_intervals(score(labels, a, NAMES), resamples, seed=0)
    scores_b = score(labels, b, NAMES)
    record = EvaluationRecord(name="a", created="", class_names=list(NAMES))
    selection = select_cases(Predictions([f"raw/{i}.png" for i in range(len(labels))], labels, a, NAMES))
    tests = verdict(scores_a, scores_b, resamples, seed=0)
    summary = {"a": "A", "b": "B", "samples": len(labels), "sentences": tests.sentences(), "verdict": tests.to_json(),
               "deltas": deltas(scores_a, scores_b), "fixed": 0, "broken": 0}
    return {"scores": scores_a, "metrics": json.loads(json.dumps(metrics_json(scores_a))),
            "result.txt": result_text(scores_a, record),
            "report.html": report_body(scores_a, record, selection, Thumbnails(), []),
            "compare": json.loads(json.dumps(summary)), "compare.txt": compare_text(summary)}


def evaluated_and_compared(folder: Path, labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Re-score A and B from predictions.csv files and compare them: every file, as written."""
    for name, probabilities in (("a", a), ("b", b)):
        (folder / name).mkdir(parents=True)
        write_predictions(folder / name / "predictions.csv",
                          Predictions([f"raw/{i}.png" for i in range(len(labels))], labels, probabilities, NAMES))
        rescore(folder / name / "predictions.csv", options=EvaluateOptions(bootstrap=200))
    compared = compare_evaluations(folder / "a", folder / "b", bootstrap=200).folder
    return {"metrics": json.loads((folder / "a" / "metrics.json").read_text()),
            "result.txt": (folder / "a" / "result.txt").read_text(),
            "report.html": (folder / "a" / "report.html").read_text(),
            "compare": json.loads((compared / "compare.json").read_text()),
            "compare.txt": (compared / "compare.txt").read_text(),
            "compare.html": (compared / "compare.html").read_text()}


class MissRate(PerClassFigure):
    """A toy per-class figure: the share of a class's images predicted as another class (1 - recall)."""

    label = "miss rate"
    order = 32
    definition = "Miss rate = FN/(TP+FN)."

    def compute(self, evidence: Evidence) -> FigureValue:
        support = evidence.support
        hits = np.diag(evidence.confusion)
        miss = np.divide(support - hits, support, out=np.zeros(len(support)), where=support > 0)
        return per_class_value(miss, support, 1 - hits.sum() / support.sum())


def docs_example() -> str:
    text = (PROJECT_ROOT / "docs" / "evaluation.md").read_text()
    return re.search(r"```python\n(# evaluate/figures/worst_recall\.py\n.*?)```", text, re.S).group(1)


@pytest.fixture
def toy_figures() -> Iterator[None]:
    """The docs' ``worst_recall`` (a number, bootstrapped) and ``miss_rate`` (per class) registered for one test."""
    module = types.ModuleType("evaluate.figures.worst_recall")
    try:
        exec(compile(docs_example(), "docs/evaluation.md", "exec"), module.__dict__)
        register_figure("miss_rate")(MissRate)
        yield
    finally:
        FIGURES.unregister("worst_recall")
        FIGURES.unregister("miss_rate")


def worst_recall(labels: np.ndarray, probabilities: np.ndarray) -> float:
    predicted = probabilities.argmax(axis=1)
    return min(float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels))


def check_toy_figures(out: dict[str, Any], labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """The two toy figures in every output of :func:`rendered` or :func:`evaluated_and_compared`."""
    metrics, summary = out["metrics"], out["compare"]
    value = worst_recall(labels, a)
    assert metrics["worst_recall"] == pytest.approx(value, abs=1e-12)
    low, high = metrics["worst_recall_interval"]
    assert low <= high and low < 1
    assert f"worst-class recall: {value:.4f} [{low:.3f}, {high:.3f}] (95%, bootstrap)" in out["result.txt"]
    row = f"<td class=\"name\">worst-class recall</td><td>{value:.4f} [{low:.3f}, {high:.3f}]</td>"
    assert row in out["report.html"]
    assert "Worst-class recall: the lowest recall over the classes with test samples." in out["report.html"]
    miss = [row["miss_rate"] for row in metrics["per_class"]]
    recall = [row["recall"] for row in metrics["per_class"]]
    assert miss[:3] == pytest.approx([1 - r for r in recall[:3]], abs=1e-12) and miss[3] == 0.0
    assert metrics["macro"]["miss_rate"] == pytest.approx(1 - metrics["macro"]["recall"], abs=1e-12)
    assert metrics["micro"]["miss_rate"] == pytest.approx(1 - metrics["accuracy"], abs=1e-12)
    assert re.search(r"average .* F1 \[95%\] +AP \[95%\] +miss rate\n", out["result.txt"])
    assert "<th>miss rate</th>" in out["report.html"]
    assert summary["deltas"]["worst_recall"] == pytest.approx(
        {"a": value, "b": worst_recall(labels, b), "delta": worst_recall(labels, b) - value}, abs=1e-12)
    assert summary["deltas"]["macro_miss_rate"]["delta"] == pytest.approx(
        -summary["deltas"]["macro_recall"]["delta"], abs=1e-12)
    assert [row["miss_rate"]["a"] for row in summary["deltas"]["per_class"]] == pytest.approx(miss, abs=1e-12)
    test = summary["verdict"]["worst_recall"]
    assert test["test"] == "paired bootstrap (percentile interval of B - A)" and test["differs"]
    assert test["interval"][0] > 0 and test["delta"] == pytest.approx(summary["deltas"]["worst_recall"]["delta"])
    assert "Worst-class recall (better)" in summary["sentences"][0]
    assert any(s.startswith("Worst-class recall: B - A = ") for s in summary["sentences"])
    assert "miss_rate" not in summary["verdict"] and "macro_miss_rate" not in summary["verdict"]  # no bootstrap
    assert "worst_recall" in out["compare.txt"] and "miss_rate A" in out["compare.txt"]


def test_a_figure_registered_in_one_module_shows_in_every_output(toy_figures):
    labels, a, b = two_models()
    out = rendered(labels, a, b)
    check_toy_figures(out, labels, a, b)
    names = [figure.name for figure in out["scores"].figures]
    assert names.index("balanced_accuracy") < names.index("worst_recall") < names.index("miss_rate")


@pytest.mark.slow
def test_a_figure_registered_in_one_module_shows_in_every_file(toy_figures, tmp_path):
    labels, a, b = two_models()
    out = evaluated_and_compared(tmp_path, labels, a, b)
    check_toy_figures(out, labels, a, b)
    assert '<td class="name">worst_recall</td>' in out["compare.html"] and "<th>miss_rate A</th>" in out["compare.html"]
    assert "Worst-class recall: B - A = " in out["compare.html"]


def test_without_it_the_outputs_do_not_mention_it():
    labels, a, b = two_models()
    out = rendered(labels, a, b)
    assert "worst_recall" not in out["metrics"] and "worst-class" not in out["result.txt"]
    assert "miss_rate" not in out["compare"]["deltas"]


def test_figures_are_registered_by_name_in_output_order():
    names = [figure.name for figure in build_figures()]
    assert names[:2] == ["accuracy", "top_k_accuracy"] and names[-1] == "calibration"
    assert {"precision", "recall", "f1", "ap", "operating_points", "balanced_accuracy"} <= set(names)
    assert [f.name for f in build_figures(["f1", "accuracy"])] == ["accuracy", "f1"]
    with pytest.raises(UserError, match=r"unknown figure 'kappa'; registered: \['accuracy', 'ap', 'balanced_accuracy'"):
        build_figures(["kappa"])


def test_a_name_registered_twice_is_refused():
    class Another(Figure):
        pass

    with pytest.raises(ValueError, match=r"figure name 'accuracy' is registered twice: by evaluate\.figures\.accuracy"):
        register_figure("accuracy")(Another)
    with pytest.raises(TypeError, match="must decorate a subclass of Figure"):
        register_figure("not_a_figure")(dict)
    assert FIGURES.get("accuracy").__name__ == "Accuracy"


def test_a_scores_object_names_what_was_computed():
    labels, a, _ = two_models(60)
    scores = score(labels, a, NAMES, figures=["accuracy"])
    assert scores.get("accuracy").value == pytest.approx(float(np.mean(a.argmax(axis=1) == labels)))
    with pytest.raises(KeyError, match=r"figure 'f1' was not computed; computed: \['accuracy'\]"):
        scores.get("f1")

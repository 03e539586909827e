"""The sentences a report opens with: computed from the figures, before any table.

How good (accuracy with its interval, macro F1), how far from validation (the model
card's validation accuracy against the test interval), what goes wrong (the worst
class, the most frequent confusion), whether the confidences can be trusted (ECE and
its direction), and which classes the test set cannot judge.
"""

from __future__ import annotations

from typing import Any

from common.results import EvaluationRecord

CONFIDENCE_TOLERANCE = 0.005
"""Mean confidence within this of accuracy is reported as matching it."""


def headline(metrics: dict[str, Any], record: EvaluationRecord) -> list[str]:
    """The opening sentences of ``result.txt`` and ``report.html``, in plain text."""
    sentences = [_overall(metrics), _validation_gap(metrics, record), _worst_class(metrics),
                 _largest_confusion(metrics)]
    if metrics.get("calibration"):
        sentences.append(_calibration(metrics))
    missing = metrics["classes_without_samples"]
    if missing:
        every = metrics["macro_all_classes"]["f1"]
        sentences.append(f"{len(missing)} class(es) have no test samples ({', '.join(missing)}): they are left out "
                         f"of the macro averages (macro F1 over all classes: {every:.3f}).")
    if record.skipped:
        sentences.append(f"{len(record.skipped)} unreadable image(s) were left out (listed in evaluation.json).")
    return sentences


def interval_text(bounds: list[float] | None, percent: bool = False) -> str:
    """`` [low, high]`` for a 95% interval (empty when there is none)."""
    if not bounds:
        return ""
    return f" [{bounds[0]:.1%}, {bounds[1]:.1%}]" if percent else f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _overall(metrics: dict[str, Any]) -> str:
    samples, accuracy = metrics["samples"], metrics["accuracy"]
    low, high = metrics["accuracy_interval"]
    text = (f"Accuracy {accuracy:.1%}: {round(accuracy * samples)} of {samples} test images right "
            f"(95% interval {low:.1%} to {high:.1%}, Wilson).")
    macro = metrics["macro"]
    text += f" Macro F1 {macro['f1']:.3f}"
    if macro.get("f1_interval"):
        f1_low, f1_high = macro["f1_interval"]
        text += f" (95% interval {f1_low:.3f} to {f1_high:.3f}, bootstrap over images)"
    return text + "."


def _validation_gap(metrics: dict[str, Any], record: EvaluationRecord) -> str:
    training = record.training or {}
    validation = (training.get("metrics") or {}).get("val/accuracy")
    if not isinstance(validation, (int, float)):
        return "The model card records no validation accuracy, so the validation-to-test gap is unknown."
    accuracy = metrics["accuracy"]
    low, high = metrics["accuracy_interval"]
    epoch = training.get("epoch")
    when = f" (epoch {epoch})" if epoch is not None else ""
    direction = "lower" if accuracy < validation else "higher"
    text = (f"Validation accuracy at the exported checkpoint{when} was {validation:.1%}: test accuracy is "
            f"{abs(validation - accuracy) * 100:.1f} points {direction}")
    if low <= validation <= high:
        return text + ", inside the test's 95% interval: consistent with validation."
    if direction == "higher":
        return text + ", outside the test's 95% interval: the test images look easier than the validation images."
    return (text + ", outside the test's 95% interval: the test images differ from the validation images "
            "(a distribution shift), or the checkpoint was chosen to fit validation.")


def _worst_class(metrics: dict[str, Any]) -> str:
    rows = [row for row in metrics["per_class"] if row["support"]]
    worst = min(rows, key=lambda row: (row["f1"], row["recall"], row["index"]))
    if worst["f1"] == 1.0:
        return "Every class with test samples has F1 1.000."
    right = round(worst["recall"] * worst["support"])
    return (f"Worst class: {worst['class']} (F1 {worst['f1']:.3f}{interval_text(worst.get('f1_interval'))}, "
            f"recall {right} of {worst['support']}, precision {worst['precision']:.3f}).")


def _largest_confusion(metrics: dict[str, Any]) -> str:
    pairs = metrics["largest_confusions"]
    if not pairs:
        return "No confusions: every test image is classified correctly."
    top = pairs[0]
    return (f"Most frequent confusion: true {top['true']} predicted as {top['predicted']}, {top['count']} time(s) "
            f"({top['count'] / top['support']:.0%} of the {top['support']} test images of {top['true']}).")


def _calibration(metrics: dict[str, Any]) -> str:
    calibration, accuracy = metrics["calibration"], metrics["accuracy"]
    confidence = calibration["mean_confidence"]
    if confidence > accuracy + CONFIDENCE_TOLERANCE:
        judgement = f"overconfident: mean confidence {confidence:.1%} against accuracy {accuracy:.1%}"
    elif confidence < accuracy - CONFIDENCE_TOLERANCE:
        judgement = f"underconfident: mean confidence {confidence:.1%} against accuracy {accuracy:.1%}"
    else:
        judgement = f"mean confidence {confidence:.1%} matches accuracy {accuracy:.1%}"
    return (f"Calibration: ECE {calibration['ece']:.3f} ({calibration['bins']} bins; 0 is perfect), {judgement}; "
            f"NLL {calibration['nll']:.3f}, Brier {calibration['brier']:.3f}.")

"""The sentences a report opens with: computed from the figures, before any table.

How good (each figure's own sentence, :meth:`evaluate.figures.base.Figure.headline`:
accuracy with its interval, macro F1, ...), how far from validation (the model card's
validation accuracy against the test interval), what goes wrong (the worst class, the
most frequent confusion), whether the confidences can be trusted (ECE and its
direction), and which classes the test set cannot judge.
"""

from __future__ import annotations

from common.results import EvaluationRecord
from evaluate.figures.accuracy import Accuracy
from evaluate.figures.base import interval_text
from evaluate.figures.calibration import CalibrationFigure
from evaluate.figures.classification import F1, Precision, Recall
from evaluate.scoring import Scores

CONFIDENCE_TOLERANCE = 0.005
"""Mean confidence within this of accuracy is reported as matching it."""


def headline(scores: Scores, record: EvaluationRecord) -> list[str]:
    """The opening sentences of ``result.txt`` and ``report.html``, in plain text."""
    sentences = [_opening(scores), _validation_gap(scores, record), _worst_class(scores), _largest_confusion(scores)]
    if CalibrationFigure.name in scores.values:
        sentences.append(_calibration(scores))
    missing = scores.classes_without_samples
    if missing:
        every = scores.get(F1).averages.macro_all_classes
        sentences.append(f"{len(missing)} class(es) have no test samples ({', '.join(missing)}): they are left out "
                         f"of the macro averages (macro F1 over all classes: {every:.3f}).")
    if record.skipped:
        sentences.append(f"{len(record.skipped)} unreadable image(s) were left out (listed in evaluation.json).")
    return sentences


def _opening(scores: Scores) -> str:
    """How good: each figure's own sentence (accuracy, macro F1, ...), in figure order."""
    parts = (figure.headline(value, scores.evidence) for figure, value in scores.items())
    return " ".join(part for part in parts if part)


def _validation_gap(scores: Scores, record: EvaluationRecord) -> str:
    training = record.training or {}
    validation = (training.get("metrics") or {}).get("val/accuracy")
    if not isinstance(validation, (int, float)):
        return "The model card records no validation accuracy, so the validation-to-test gap is unknown."
    value = scores.get(Accuracy)
    accuracy, (low, high) = value.value, value.interval
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


def _worst_class(scores: Scores) -> str:
    f1, recall, precision = scores.get(F1), scores.get(Recall).per_class, scores.get(Precision).per_class
    support = scores.evidence.support
    worst = min((c for c in range(len(support)) if support[c]), key=lambda c: (f1.per_class[c], recall[c], c))
    if f1.per_class[worst] == 1.0:
        return "Every class with test samples has F1 1.000."
    right = round(recall[worst] * support[worst])
    bounds = None if f1.per_class_interval is None else f1.per_class_interval[worst]
    return (f"Worst class: {scores.class_names[worst]} (F1 {f1.per_class[worst]:.3f}{interval_text(bounds)}, "
            f"recall {right} of {support[worst]}, precision {precision[worst]:.3f}).")


def _largest_confusion(scores: Scores) -> str:
    pairs = scores.largest_confusions(1)
    if not pairs:
        return "No confusions: every test image is classified correctly."
    top = pairs[0]
    return (f"Most frequent confusion: true {top.true} predicted as {top.predicted}, {top.count} time(s) "
            f"({top.count / top.support:.0%} of the {top.support} test images of {top.true}).")


def _calibration(scores: Scores) -> str:
    calibration, accuracy = scores.get(CalibrationFigure).detail, scores.get(Accuracy).value
    confidence = calibration.mean_confidence
    if confidence > accuracy + CONFIDENCE_TOLERANCE:
        judgement = f"overconfident: mean confidence {confidence:.1%} against accuracy {accuracy:.1%}"
    elif confidence < accuracy - CONFIDENCE_TOLERANCE:
        judgement = f"underconfident: mean confidence {confidence:.1%} against accuracy {accuracy:.1%}"
    else:
        judgement = f"mean confidence {confidence:.1%} matches accuracy {accuracy:.1%}"
    return (f"Calibration: ECE {calibration.ece:.3f} ({len(calibration.counts)} bins; 0 is perfect), {judgement}; "
            f"NLL {calibration.nll:.3f}, Brier {calibration.brier:.3f}.")

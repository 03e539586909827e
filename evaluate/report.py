"""The human-facing outputs: ``result.txt`` and ``report.html`` linking everything.

Both open with the headline (:mod:`evaluate.headline`), then the training,
validation and test figures side by side, then what the figures of
:mod:`evaluate.figures` give, laid out: their summary lines, their columns of the
averages and per-class tables, their own sections, and their definitions.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from common.files import atomic_write_text
from common.html import figure, link, page, table
from common.results import EvaluationRecord
from common.thumbnails import Thumbnails
from evaluate.badcases import Selection, case_html
from evaluate.figures.accuracy import Accuracy
from evaluate.figures.base import AVERAGE_KINDS, Line, interval_text, spoken_list
from evaluate.figures.calibration import CalibrationFigure
from evaluate.headline import headline
from evaluate.plots import CONFUSION_COUNTS, CONFUSION_NORMALIZED
from evaluate.scoring import Scores

CONVENTIONS = (
    "Per-class figures are one-vs-rest. Macro = unweighted mean over the classes with test samples, weighted = mean "
    "weighted by support, micro = pooled over all samples (for single-label data micro precision = recall = F1 = "
    "accuracy). Ties: on equal scores the lower class index ranks first, so accuracy = top-1. Intervals are 95%; "
    "bootstrap intervals are percentiles over resampled images."
)

TRAINING_NOTE = ("Training figures are measured on augmented batches in training mode (with label smoothing when "
                 "configured); validation loss is plain cross-entropy, the same quantity as the test NLL.")


def definitions(scores: Scores) -> str:
    """The report's Definitions: the conventions, then each figure's own definition."""
    return " ".join([CONVENTIONS, *(figure.definition for figure in scores.figures if figure.definition)])


def training_rows(scores: Scores, record: EvaluationRecord) -> tuple[list[str], list[list[object]]]:
    """Header and rows setting the model card's training and validation figures beside the test's."""
    training = record.training or {}
    figures = training.get("metrics") or {}
    epoch = training.get("epoch")
    header = ["figure", f"training (epoch {epoch})" if epoch is not None else "training", "validation", "test",
              "test - validation"]
    accuracy = scores.get(Accuracy)
    calibration = scores.values.get(CalibrationFigure.name)
    test = {"accuracy": accuracy.value, "loss": calibration.detail.nll if calibration else None}
    rows: list[list[object]] = []
    for name, train_key, val_key in (("accuracy", "train/accuracy", "val/accuracy"),
                                     ("loss (cross-entropy)", "train/loss", "val/loss")):
        value = test[name.split()[0]]
        validation = figures.get(val_key)
        shown = "-" if value is None else f"{value:.4f}"
        if name == "accuracy":
            shown += interval_text(accuracy.interval)
        gap = f"{value - validation:+.4f}" if isinstance(validation, (int, float)) and value is not None else "-"
        rows.append([name, _number(figures.get(train_key)), _number(validation), shown, gap])
    return header, rows


def summary_lines(scores: Scores) -> list[Line]:
    """The single-number figures (accuracy, top-k, ...), in figure order."""
    return [line for figure, value in scores.items() for line in figure.summary(value)]


def average_rows(scores: Scores) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the averages table: one column per per-class figure that has averages."""
    columns = [c for figure, value in scores.items() for c in figure.columns(value) if c.averages is not None]
    kinds = [k for k in AVERAGE_KINDS if k != "macro_all_classes" or scores.classes_without_samples]
    rows = [[kind.replace("_", " "), *(c.averages[AVERAGE_KINDS.index(kind)] for c in columns)] for kind in kinds]
    return ["average", *(c.header for c in columns)], rows


def per_class_rows(scores: Scores) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the per-class table: every figure's columns (``-`` for a class without samples)."""
    columns = [c for figure, value in scores.items() for c in figure.columns(value)]
    rows = []
    for index, (name, support) in enumerate(zip(scores.class_names, scores.evidence.support)):
        if support:
            rows.append([name, int(support), *(c.cells[index] for c in columns)])
        else:
            rows.append([f"{name} (no test samples)", 0, *("-" for _ in columns)])
    return ["class", "support", *(c.header for c in columns)], rows


def list_text(record: EvaluationRecord) -> str:
    """The list evaluated, with its version in the data set's list history when it was known."""
    return f"{record.list} (v{record.list_version})" if record.list_version else record.list


def result_text(scores: Scores, record: EvaluationRecord) -> str:
    """The plain-text summary ``result.txt``."""
    lines = [*headline(scores, record), "", f"model: {record.model}", f"list: {list_text(record)}",
             f"samples: {scores.samples}"]
    lines += [f"{line.label}: {line.text}{f' {line.note}' if line.note else ''}" for line in summary_lines(scores)]
    lines += ["", _text_table(*training_rows(scores, record)), TRAINING_NOTE, ""]
    lines += [_text_table(*average_rows(scores)), ""]
    lines += [_text_table(*per_class_rows(scores)), ""]
    if scores.classes_without_samples:
        lines += [f"classes without test samples (left out of macro averages): "
                  f"{', '.join(scores.classes_without_samples)}", ""]
    for section in (kind.section(value) for kind, value in scores.items()):
        if section is not None:
            lines += [*section.text, ""]
    lines += ["confusion matrices: rows = true class, columns = predicted class", "", _uncertainty_note(scores),
              "", definitions(scores), ""]
    return "\n".join(lines)


def write_report(folder: Path, scores: Scores, record: EvaluationRecord, selection: Selection,
                 thumbs: Thumbnails, files: list[str]) -> None:
    """Write ``result.txt`` and ``report.html``."""
    atomic_write_text(folder / "result.txt", result_text(scores, record))
    atomic_write_text(folder / "report.html", page(f"Evaluation: {record.name}",
                                                   report_body(scores, record, selection, thumbs, files)))


def report_body(scores: Scores, record: EvaluationRecord, selection: Selection, thumbs: Thumbnails,
                files: list[str]) -> str:
    """The body of ``report.html`` (escaped HTML)."""
    facts = [["model", record.model], ["list", list_text(record)], ["samples", scores.samples],
             ["skipped (unreadable)", len(record.skipped)], ["network hash", record.network_hash],
             ["trained in run", record.source_run], ["evaluated", record.created]]
    mistakes = "".join(case_html(c, list(scores.class_names), thumbs) for c in selection.confident_mistakes[:8])
    sentences = "".join(f"<p>{escape(s)}</p>" for s in headline(scores, record))
    sections = "".join(s.html for s in (figure.section(value) for figure, value in scores.items()) if s)
    return "".join([
        f'<div class="headline">{sentences}</div>',
        table(["", ""], [[k, v] for k, v in facts]),
        "<h2>Training, validation and test</h2>", table(*training_rows(scores, record)),
        f'<p class="muted">{escape(TRAINING_NOTE)}</p>',
        "<h2>Figures</h2>", table(["figure", "value [95%]", "interval"], [[x.label, x.text, x.note]
                                                                 for x in summary_lines(scores)]),
        table(*average_rows(scores)),
        f'<p class="muted">{escape(_uncertainty_note(scores))}</p>',
        "<h2>Per class</h2>", table(*per_class_rows(scores)), _missing_note(scores),
        sections,
        "<h2>Precision-recall curves</h2>",
        '<p class="muted">One panel per class, lowest AP first, over the micro curve in grey.</p>',
        figure("pr_curves.png", "precision-recall curves").replace("<img ", '<img id="pr-curves" ', 1),
        f"<p>data: {link('pr_curves.csv', 'pr_curves.csv')}</p>",
        "<h2>Confusion matrices (rows = true class, columns = predicted class)</h2>",
        figure(f"{CONFUSION_COUNTS}.png", "confusion matrix, counts"),
        figure(f"{CONFUSION_NORMALIZED}.png", "confusion matrix, row-normalized"),
        f"<p>data: {link(f'{CONFUSION_COUNTS}.csv', 'counts')}, {link(f'{CONFUSION_NORMALIZED}.csv', 'normalized')}</p>",
        f"<h2>Bad cases</h2><p>{link('bad_cases.html', 'The full bad-case report')}: the most confident mistakes "
        "overall and per confusion pair, and the least confident correct predictions. Each shows the file and the "
        "network's input, with the runner-up class and the margin.</p>",
        f'<div class="cases">{mistakes}</div>' if mistakes else '<p class="muted">No mistakes.</p>',
        figure("bad_cases.png", "grid of the most confident mistakes"),
        "<h2>Files</h2><ul>" + "".join(f"<li>{link(f, f)}</li>" for f in sorted(files)) + "</ul>",
        f"<h2>Definitions</h2><p>{escape(definitions(scores))}</p>",
    ])


def _missing_note(scores: Scores) -> str:
    missing = scores.classes_without_samples
    if not missing:
        return ""
    return (f'<p class="warn">No test samples for {escape(", ".join(missing))}: left out of the macro averages '
            "(the 'macro all classes' row counts them as 0) and given no operating points.</p>")


def _uncertainty_note(scores: Scores) -> str:
    analytic = [f"{figure.label}: {figure.interval_method} interval" for figure, value in scores.items()
                if value.interval is not None and not figure.bootstrapped]
    text = "; ".join(["[low, high]: 95% intervals", *analytic])
    bootstrapped = [figure.label for figure in scores.figures if figure.bootstrapped]
    if scores.bootstrap is None:
        return text + "; no bootstrap intervals (--bootstrap 0)"
    if not bootstrapped:
        return text
    return text + (f"; {spoken_list(bootstrapped)}: percentile bootstrap, {scores.bootstrap.resamples} resamples of "
                   f"the images (seed {scores.bootstrap.seed})")


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _text_table(header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in column) + 2 for column in zip(header, *rows)]
    lines = ["".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines += ["".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)

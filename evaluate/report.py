"""The human-facing outputs: ``result.txt`` and ``report.html`` linking everything.

Both open with the headline (:mod:`evaluate.headline`), then the training,
validation and test figures side by side, then the tables.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from common.html import figure, link, page, table
from common.results import EvaluationRecord
from common.thumbnails import Thumbnails
from evaluate.badcases import Selection, case_html
from evaluate.calibration import RELIABILITY
from evaluate.headline import headline, interval_text
from evaluate.plots import CONFUSION_COUNTS, CONFUSION_NORMALIZED

DEFINITIONS = (
    "Per-class figures are one-vs-rest. Precision = TP/(TP+FP), recall = TP/(TP+FN), F1 their harmonic mean "
    "(0 where undefined). AP is the step-wise area under the precision-recall curve, sum of (R_n - R_(n-1)) P_n "
    "over distinct score thresholds (no interpolation). Macro = unweighted mean over the classes with test samples, "
    "weighted = mean weighted by support, micro = pooled over all samples (for single-label data micro P = R = F1 = "
    "accuracy; micro AP ranks all sample-class pairs together). Ties: on equal scores the lower class index ranks "
    "first, so accuracy = top-1. Top-k: the true class is among the k highest-ranked. Operating points: the lowest "
    "threshold reaching a target precision, the highest reaching a target recall. Intervals are 95%: Wilson for "
    "accuracy, percentile bootstrap over resampled images for F1 and AP. Calibration: 15 equal-width bins of the "
    "predicted class's probability; ECE = sum of (n_bin/N)|accuracy - confidence|, MCE the largest bin gap; NLL = "
    "mean -ln p(true class); Brier = mean sum over classes of (p - onehot)^2."
)

TRAINING_NOTE = ("Training figures are measured on augmented batches in training mode (with label smoothing when "
                 "configured); validation loss is plain cross-entropy, the same quantity as the test NLL.")


def training_rows(metrics: dict[str, Any], record: EvaluationRecord) -> tuple[list[str], list[list[object]]]:
    """Header and rows setting the model card's training and validation figures beside the test's."""
    training = record.training or {}
    figures = training.get("metrics") or {}
    epoch = training.get("epoch")
    header = ["figure", f"training (epoch {epoch})" if epoch is not None else "training", "validation", "test",
              "test - validation"]
    test = {"accuracy": metrics["accuracy"], "loss": (metrics.get("calibration") or {}).get("nll")}
    rows: list[list[object]] = []
    for name, train_key, val_key in (("accuracy", "train/accuracy", "val/accuracy"),
                                     ("loss (cross-entropy)", "train/loss", "val/loss")):
        value = test[name.split()[0]]
        validation = figures.get(val_key)
        shown = "-" if value is None else f"{value:.4f}"
        if name == "accuracy":
            shown += interval_text(metrics["accuracy_interval"])
        gap = f"{value - validation:+.4f}" if isinstance(validation, (int, float)) and value is not None else "-"
        rows.append([name, _number(figures.get(train_key)), _number(validation), shown, gap])
    return header, rows


def average_rows(metrics: dict[str, Any]) -> list[list[object]]:
    """Rows of the averages table: precision, recall, F1, AP (with the macro intervals)."""
    kinds = ["macro", "weighted", "micro"]
    if metrics["classes_without_samples"]:
        kinds.insert(1, "macro_all_classes")
    rows = []
    for kind in kinds:
        averages = metrics[kind]
        rows.append([kind.replace("_", " "), f"{averages['precision']:.4f}", f"{averages['recall']:.4f}",
                     f"{averages['f1']:.4f}{interval_text(averages.get('f1_interval'))}",
                     f"{averages['ap']:.4f}{interval_text(averages.get('ap_interval'))}"])
    return rows


def per_class_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the per-class table, with intervals and operating points."""
    point_keys = []
    for row in metrics["per_class"]:
        if row["operating_points"]:
            points = row["operating_points"]
            point_keys = [("precision", k) for k in points["precision"]] + [("recall", k) for k in points["recall"]]
            break
    rows = []
    for row in metrics["per_class"]:
        if not row["support"]:
            rows.append([f"{row['class']} (no test samples)", 0, "-", "-", "-", "-", *("-" for _ in point_keys)])
            continue
        cells = []
        for kind, key in point_keys:
            point = row["operating_points"][kind][key]
            cells.append("unreachable" if point is None else f"{point['threshold']:.3f}")
        rows.append([row["class"], row["support"], f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                     f"{row['f1']:.4f}{interval_text(row.get('f1_interval'))}",
                     f"{row['ap']:.4f}{interval_text(row.get('ap_interval'))}", *cells])
    header = ["class", "support", "precision", "recall", "F1 [95%]", "AP [95%]",
              *(f"threshold @ {kind} {key}" for kind, key in point_keys)]
    return header, rows


def list_text(record: EvaluationRecord) -> str:
    """The list evaluated, with its version in the data set's list history when it was known."""
    return f"{record.list} (v{record.list_version})" if record.list_version else record.list


def result_text(metrics: dict[str, Any], record: EvaluationRecord) -> str:
    """The plain-text summary ``result.txt``."""
    lines = [*headline(metrics, record), "", f"model: {record.model}", f"list: {list_text(record)}",
             f"samples: {metrics['samples']}",
             f"accuracy: {metrics['accuracy']:.4f}{interval_text(metrics['accuracy_interval'])} (95%, Wilson)"]
    lines += [f"top-{k} accuracy: {v:.4f}" for k, v in metrics["top_k_accuracy"].items()]
    lines += ["", _text_table(*training_rows(metrics, record)), TRAINING_NOTE, ""]
    lines += [_text_table(["average", "precision", "recall", "F1 [95%]", "AP [95%]"], average_rows(metrics)), ""]
    lines += [_text_table(*per_class_rows(metrics)), ""]
    if metrics["classes_without_samples"]:
        lines += [f"classes without test samples (left out of macro averages): "
                  f"{', '.join(metrics['classes_without_samples'])}", ""]
    calibration = metrics.get("calibration")
    if calibration:
        lines += [f"calibration ({calibration['bins']} bins): ECE {calibration['ece']:.4f}, MCE "
                  f"{calibration['mce']:.4f}, NLL {calibration['nll']:.4f}, Brier {calibration['brier']:.4f}", ""]
    lines += ["confusion matrices: rows = true class, columns = predicted class", "", _uncertainty_note(metrics),
              "", DEFINITIONS, ""]
    return "\n".join(lines)


def write_report(folder: Path, metrics: dict[str, Any], record: EvaluationRecord, selection: Selection,
                 thumbs: Thumbnails, class_names: list[str], files: list[str]) -> None:
    """Write ``result.txt`` and ``report.html``."""
    atomic_write_text(folder / "result.txt", result_text(metrics, record))
    facts = [["model", record.model], ["list", list_text(record)], ["samples", metrics["samples"]],
             ["skipped (unreadable)", len(record.skipped)], ["network hash", record.network_hash],
             ["trained in run", record.source_run], ["evaluated", record.created]]
    top = [[f"top-{k}", f"{v:.4f}"] for k, v in metrics["top_k_accuracy"].items()]
    header, rows = per_class_rows(metrics)
    mistakes = "".join(case_html(c, class_names, thumbs) for c in selection.confident_mistakes[:8])
    sentences = "".join(f"<p>{escape(s)}</p>" for s in headline(metrics, record))
    body = "".join([
        f'<div class="headline">{sentences}</div>',
        table(["", ""], [[k, v] for k, v in facts]),
        "<h2>Training, validation and test</h2>", table(*training_rows(metrics, record)),
        f'<p class="muted">{escape(TRAINING_NOTE)}</p>',
        f"<h2>Accuracy {metrics['accuracy']:.4f}{escape(interval_text(metrics['accuracy_interval']))}</h2>",
        table(["", "accuracy"], top),
        table(["average", "precision", "recall", "F1 [95%]", "AP [95%]"], average_rows(metrics)),
        f'<p class="muted">{escape(_uncertainty_note(metrics))}</p>',
        "<h2>Per class</h2>", table(header, rows), _missing_note(metrics),
        _calibration_html(metrics),
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
        f"<h2>Definitions</h2><p>{escape(DEFINITIONS)}</p>",
    ])
    atomic_write_text(folder / "report.html", page(f"Evaluation: {record.name}", body))


def _calibration_html(metrics: dict[str, Any]) -> str:
    calibration = metrics.get("calibration")
    if not calibration:
        return ""
    rows = [[name, f"{calibration[key]:.4f}"] for name, key in (
        ("ECE (expected calibration error)", "ece"), ("MCE (maximum calibration error)", "mce"),
        ("NLL (nats per image)", "nll"), ("Brier score", "brier"), ("mean confidence", "mean_confidence"))]
    return "".join([
        "<h2>Calibration</h2>", table(["figure", "value"], rows),
        figure(f"{RELIABILITY}.png", "reliability diagram"),
        f"<p>data: {link(f'{RELIABILITY}.csv', f'{RELIABILITY}.csv')} ({calibration['bins']} equal-width bins of the "
        "predicted class's probability)</p>",
    ])


def _missing_note(metrics: dict[str, Any]) -> str:
    missing = metrics["classes_without_samples"]
    if not missing:
        return ""
    return (f'<p class="warn">No test samples for {escape(", ".join(missing))}: left out of the macro averages '
            "(the 'macro all classes' row counts them as 0) and given no operating points.</p>")


def _uncertainty_note(metrics: dict[str, Any]) -> str:
    bootstrap = metrics.get("uncertainty", {}).get("bootstrap")
    text = "[low, high]: 95% intervals; accuracy: Wilson score interval"
    if bootstrap:
        return text + (f"; F1 and AP: percentile bootstrap, {bootstrap['resamples']} resamples of the images "
                       f"(seed {bootstrap['seed']})")
    return text + "; no bootstrap intervals (--bootstrap 0)"


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _text_table(header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in column) + 2 for column in zip(header, *rows)]
    lines = ["".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines += ["".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)

"""The human-facing outputs: ``result.txt`` and ``report.html`` linking everything."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from common.predictions import EvaluationRecord
from evaluate.badcases import Selection, case_html
from evaluate.html import figure, link, page, table
from evaluate.plots import CONFUSION_COUNTS, CONFUSION_NORMALIZED

DEFINITIONS = (
    "Per-class figures are one-vs-rest. Precision = TP/(TP+FP), recall = TP/(TP+FN), F1 their harmonic mean "
    "(0 where undefined). AP is the step-wise area under the precision-recall curve, sum of (R_n - R_(n-1)) P_n "
    "over distinct score thresholds (no interpolation). Macro = unweighted mean over classes, weighted = mean "
    "weighted by support, micro = pooled over all samples (for single-label data micro P = R = F1 = accuracy; "
    "micro AP ranks all sample-class pairs together). Top-k: the true class is among the k highest scores. "
    "Operating points: the lowest threshold reaching a target precision, the highest reaching a target recall."
)


def headline_rows(metrics: dict[str, Any]) -> list[list[object]]:
    """Rows of the headline table: average, precision, recall, F1, AP."""
    return [[kind, *(f"{metrics[kind][m]:.4f}" for m in ("precision", "recall", "f1", "ap"))]
            for kind in ("macro", "weighted", "micro")]


def per_class_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the per-class table, with the operating points."""
    rows, point_keys = [], []
    for row in metrics["per_class"]:
        points = row["operating_points"]
        point_keys = [("precision", k) for k in points["precision"]] + [("recall", k) for k in points["recall"]]
        cells = []
        for kind, key in point_keys:
            point = points[kind][key]
            cells.append("unreachable" if point is None else f"{point['threshold']:.3f}")
        rows.append([row["class"], row["support"], f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                     f"{row['f1']:.4f}", f"{row['ap']:.4f}", *cells])
    header = ["class", "support", "precision", "recall", "F1", "AP",
              *(f"threshold @ {kind} {key}" for kind, key in point_keys)]
    return header, rows


def result_text(metrics: dict[str, Any], record: EvaluationRecord) -> str:
    """The plain-text summary ``result.txt``."""
    lines = [f"model: {record.model}", f"list: {record.list}", f"samples: {metrics['samples']}",
             f"accuracy: {metrics['accuracy']:.4f}"]
    lines += [f"top-{k} accuracy: {v:.4f}" for k, v in metrics["top_k_accuracy"].items()]
    lines.append("")
    lines.append(f"{'average':<10}{'precision':>10}{'recall':>10}{'F1':>10}{'AP':>10}")
    lines += [f"{r[0]:<10}{r[1]:>10}{r[2]:>10}{r[3]:>10}{r[4]:>10}" for r in headline_rows(metrics)]
    lines.append("")
    header, rows = per_class_rows(metrics)
    widths = [max(len(str(x)) for x in column) + 2 for column in zip(header, *rows)]
    lines.append("".join(str(h).rjust(w) for h, w in zip(header, widths)))
    lines += ["".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines += ["", "confusion matrices: rows = true class, columns = predicted class", "", DEFINITIONS, ""]
    return "\n".join(lines)


def write_report(folder: Path, metrics: dict[str, Any], record: EvaluationRecord, selection: Selection,
                 thumbs: dict[int, str], class_names: list[str], files: list[str]) -> None:
    """Write ``result.txt`` and ``report.html``."""
    atomic_write_text(folder / "result.txt", result_text(metrics, record))
    facts = [["model", record.model], ["list", record.list], ["samples", metrics["samples"]],
             ["skipped (unreadable)", len(record.skipped)], ["network hash", record.network_hash],
             ["trained in run", record.source_run], ["evaluated", record.created]]
    top = [[f"top-{k}", f"{v:.4f}"] for k, v in metrics["top_k_accuracy"].items()]
    header, rows = per_class_rows(metrics)
    mistakes = "".join(case_html(c, class_names, thumbs) for c in selection.confident_mistakes[:8])
    body = "".join([
        table(["", ""], [[k, v] for k, v in facts]),
        f"<h2>Accuracy {metrics['accuracy']:.4f}</h2>",
        table(["", "accuracy"], top),
        table(["average", "precision", "recall", "F1", "AP"], headline_rows(metrics)),
        "<h2>Per class</h2>", table(header, rows),
        "<h2>Precision-recall curves</h2>", figure("pr_curves.png", "precision-recall curves"),
        f"<p>data: {link('pr_curves.csv', 'pr_curves.csv')}</p>",
        "<h2>Confusion matrices (rows = true class, columns = predicted class)</h2>",
        figure(f"{CONFUSION_COUNTS}.png", "confusion matrix, counts"),
        figure(f"{CONFUSION_NORMALIZED}.png", "confusion matrix, row-normalized"),
        f"<p>data: {link(f'{CONFUSION_COUNTS}.csv', 'counts')}, {link(f'{CONFUSION_NORMALIZED}.csv', 'normalized')}</p>",
        f"<h2>Bad cases</h2><p>{link('bad_cases.html', 'The full bad-case report')}: the most confident mistakes "
        "overall and per confusion pair, and the least confident correct predictions.</p>",
        f'<div class="cases">{mistakes}</div>' if mistakes else '<p class="muted">No mistakes.</p>',
        figure("bad_cases.png", "grid of the most confident mistakes"),
        "<h2>Files</h2><ul>" + "".join(f"<li>{link(f, f)}</li>" for f in sorted(files)) + "</ul>",
        f"<h2>Definitions</h2><p>{escape(DEFINITIONS)}</p>",
    ])
    atomic_write_text(folder / "report.html", page(f"Evaluation: {record.name}", body))

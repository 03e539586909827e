"""Figures and their data: PR curves and confusion matrices, each PNG with a CSV beside it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from common.files import atomic_write_text
from common.plotting import pyplot
from evaluate.metrics import Curve, Scores

MAX_CURVE_POINTS = 2000
"""Points per curve kept in the CSV and the plot (evenly spaced, ends kept); metrics use them all."""

CONFUSION_COUNTS = "confusion_counts_rows-true_cols-predicted"
CONFUSION_NORMALIZED = "confusion_normalized_rows-true_cols-predicted"


def write_pr_curves(folder: Path, scores: Scores, class_names: list[str]) -> list[str]:
    """``pr_curves.png`` (every class thin, micro and macro thick) and ``pr_curves.csv``."""
    plt = pyplot()
    metrics = scores.metrics
    figure, axes = plt.subplots(figsize=(7, 6), dpi=110)
    for index, name in enumerate(class_names):
        curve = _decimate(scores.curves[name])
        ap = metrics["per_class"][index]["ap"]
        label = f"{name} (AP {ap:.3f})" if len(class_names) <= 20 else None
        axes.plot(curve.recall, curve.precision, linewidth=0.8, alpha=0.7, label=label)
    for name, style in (("micro", "-"), ("macro", "--")):
        curve = _decimate(scores.curves[name])
        axes.plot(curve.recall, curve.precision, style, color="black", linewidth=2.2,
                  label=f"{name} average (AP {metrics[name]['ap']:.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02),
             title=f"Precision-recall, one-vs-rest ({metrics['samples']} samples)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower left", ncol=2 if len(class_names) > 10 else 1)
    figure.tight_layout()
    figure.savefig(folder / "pr_curves.png")
    plt.close(figure)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["curve", "recall", "precision", "threshold"])
    for name in [*class_names, "micro", "macro"]:
        curve = _decimate(scores.curves[name])
        thresholds = list(curve.thresholds) + [""] * (len(curve.recall) - len(curve.thresholds))
        for r, p, t in zip(curve.recall, curve.precision, thresholds):
            writer.writerow([name, f"{r:.6g}", f"{p:.6g}", t if t == "" else f"{t:.9g}"])
    atomic_write_text(folder / "pr_curves.csv", buffer.getvalue())
    return ["pr_curves.png", "pr_curves.csv"]


def write_confusions(folder: Path, confusion: np.ndarray, class_names: list[str]) -> list[str]:
    """Confusion matrices as counts and row-normalised (each row sums to 1: recall on the
    diagonal); rows are true classes, columns predicted classes, as the file names say."""
    support = confusion.sum(axis=1, keepdims=True)  # (K, 1)
    normalized = np.divide(confusion, support, out=np.zeros(confusion.shape), where=support != 0)
    written = []
    for stem, matrix, title, fmt in (
        (CONFUSION_COUNTS, confusion, "Confusion matrix (counts)", "d"),
        (CONFUSION_NORMALIZED, normalized, "Confusion matrix (row-normalized = recall)", ".2f"),
    ):
        _plot_matrix(folder / f"{stem}.png", matrix, class_names, title, fmt)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *(int(v) if fmt == "d" else f"{v:.6g}" for v in row)])
        atomic_write_text(folder / f"{stem}.csv", buffer.getvalue())
        written += [f"{stem}.png", f"{stem}.csv"]
    return written


def _plot_matrix(path: Path, matrix: np.ndarray, class_names: list[str], title: str, fmt: str) -> None:
    plt = pyplot()
    size = min(14.0, 3.0 + 0.45 * len(class_names))
    figure, axes = plt.subplots(figsize=(size, size * 0.9), dpi=110)
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    if len(class_names) <= 40:
        axes.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 10 else 0)
        axes.set_yticks(ticks, class_names)
    if len(class_names) <= 20:
        high = matrix.max() / 2 if matrix.size else 0
        for (row, column), value in np.ndenumerate(matrix):
            if value:
                axes.text(column, row, format(value, fmt), ha="center", va="center", fontsize=7,
                          color="white" if value > high else "black")
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _decimate(curve: Curve) -> Curve:
    count = len(curve.recall)
    if count <= MAX_CURVE_POINTS:
        return curve
    keep = np.unique(np.r_[np.linspace(0, count - 2, MAX_CURVE_POINTS - 1).astype(np.int64), count - 1])
    thresholds = curve.thresholds[keep[:-1]] if len(curve.thresholds) else curve.thresholds
    return Curve(precision=curve.precision[keep], recall=curve.recall[keep], thresholds=thresholds)

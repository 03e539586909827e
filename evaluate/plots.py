"""Figures and their data: PR curves and confusion matrices, each PNG with a CSV beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.files import write_csv
from common.plotting import confusion_figure, new_figure, safe_text, save_figure
from evaluate.figures.average_precision import AveragePrecision
from evaluate.figures.base import interval_text
from evaluate.metrics import Curve
from evaluate.scoring import Scores

MAX_PANELS = 47
"""Class panels in ``pr_curves.png`` at most (the lowest AP first); the CSV has every class."""

MAX_CURVE_POINTS = 2000
"""Points per curve kept in the CSV and the plot (evenly spaced, ends kept); metrics use them all."""

CONFUSION_COUNTS = "confusion_counts_rows-true_cols-predicted"
CONFUSION_NORMALIZED = "confusion_normalized_rows-true_cols-predicted"


def class_colour(index: int, classes: int) -> tuple[float, float, float]:
    """The colour of class ``index`` in every figure (tab10 up to 10 classes, then tab20, repeating)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10" if classes <= 10 else "tab20"].colors
    return tuple(palette[index % len(palette)])


def write_pr_curves(folder: Path, scores: Scores) -> list[str]:
    """``pr_curves.png`` as small multiples, and ``pr_curves.csv``.

    The first panel holds the micro and macro averages; then one panel per class with
    samples, lowest AP first (at most ``MAX_PANELS``), each in the class's colour
    over the micro curve in light grey, so curves that coincide (several at AP 1) stay
    visible.
    """
    ap = scores.get(AveragePrecision)
    names, support = scores.class_names, scores.evidence.support
    with_samples = [c for c in range(len(names)) if support[c]]
    shown = sorted(with_samples, key=lambda c: (ap.per_class[c], c))[:MAX_PANELS]
    columns = min(4 if len(shown) < 16 else 6, len(shown) + 1)
    lines = -(-(len(shown) + 1) // columns)
    figure = new_figure(2.5 * columns, 2.3 * lines + 0.5)
    panels = figure.subplots(lines, columns, squeeze=False, sharex=True, sharey=True).ravel()
    micro = decimate(scores.curves["micro"])
    for name, style, average in (("micro", "-", ap.averages.micro), ("macro", "--", ap.averages.macro)):
        curve = decimate(scores.curves[name])
        panels[0].plot(curve.recall, curve.precision, style, color="black", linewidth=1.6,
                       label=f"{name} (AP {average:.3f})")
    panels[0].set_title("averages", fontsize=9)
    panels[0].legend(fontsize=7, loc="lower left")
    for axis, c in zip(panels[1:], shown):
        curve = decimate(scores.curves[names[c]])
        axis.plot(micro.recall, micro.precision, color="#cccccc", linewidth=1.0)
        axis.plot(curve.recall, curve.precision, color=class_colour(c, len(names)), linewidth=2.2)
        bounds = None if ap.per_class_interval is None else ap.per_class_interval[c]
        axis.set_title(f"{safe_text(names[c])}: AP {ap.per_class[c]:.3f}{interval_text(bounds)}", fontsize=8)
    for axis in panels:
        axis.set(xlim=(0, 1.01), ylim=(0, 1.03))
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    for axis in panels[len(shown) + 1:]:
        axis.axis("off")
    figure.supxlabel("recall", fontsize=9)
    figure.supylabel("precision", fontsize=9)
    figure.suptitle(_pr_title(scores, len(with_samples), len(shown)), fontsize=9)
    save_figure(figure, folder / "pr_curves.png")
    _write_curves_csv(folder / "pr_curves.csv", scores)
    return ["pr_curves.png", "pr_curves.csv"]


def _pr_title(scores: Scores, with_samples: int, shown: int) -> str:
    title = f"Precision-recall, one-vs-rest, {scores.samples} samples; classes by AP, lowest first"
    if shown < with_samples:
        title += f" (the {shown} lowest of {with_samples})"
    missing = scores.classes_without_samples
    if missing:
        listed = ", ".join(safe_text(name) for name in missing[:8])
        title += f"\nno test samples, not drawn: {listed}{' ...' if len(missing) > 8 else ''}"
    return title


def _write_curves_csv(path: Path, scores: Scores) -> None:
    def rows() -> Iterator[list[str]]:
        for name in [*scores.class_names, "micro", "macro"]:
            curve = decimate(scores.curves[name])
            thresholds = [f"{t:.9g}" for t in curve.thresholds] + [""] * (len(curve.recall) - len(curve.thresholds))
            yield from ([name, f"{r:.6g}", f"{p:.6g}", t] for r, p, t in zip(curve.recall, curve.precision, thresholds))

    write_csv(path, ["curve", "recall", "precision", "threshold"], rows())


def write_confusions(folder: Path, confusion: np.ndarray, class_names: list[str]) -> list[str]:
    """Confusion matrices as counts and row-normalised (each row sums to 1: recall on the
    diagonal); rows are true classes, columns predicted classes, as the file names say. Both
    figures are :func:`common.plotting.confusion_figure` (training's drawer too), coloured by the
    share of each true class, their cells saying the counts or the shares."""
    support = confusion.sum(axis=1, keepdims=True)  # (K, 1)
    normalized = np.divide(confusion, support, out=np.zeros(confusion.shape), where=support != 0)
    written = []
    for stem, matrix, title, cells in (
        (CONFUSION_COUNTS, confusion, "Confusion matrix (counts)", "counts"),
        (CONFUSION_NORMALIZED, normalized, "Confusion matrix (row-normalized = recall)", "shares"),
    ):
        save_figure(confusion_figure(confusion, class_names, title, cells), folder / f"{stem}.png")
        write_csv(folder / f"{stem}.csv", ["true \\ predicted", *class_names],
                  ([name, *(int(v) if cells == "counts" else f"{v:.6g}" for v in row)]
                   for name, row in zip(class_names, matrix)))
        written += [f"{stem}.png", f"{stem}.csv"]
    return written


def decimate(curve: Curve) -> Curve:
    """At most ``MAX_CURVE_POINTS`` points of a curve, evenly spaced, both ends kept (for plots and CSVs)."""
    count = len(curve.recall)
    if count <= MAX_CURVE_POINTS:
        return curve
    keep = np.unique(np.r_[np.linspace(0, count - 2, MAX_CURVE_POINTS - 1).astype(np.int64), count - 1])
    thresholds = curve.thresholds[keep[:-1]] if len(curve.thresholds) else curve.thresholds
    return Curve(precision=curve.precision[keep], recall=curve.recall[keep], thresholds=thresholds)

"""The figures of a run: image grids, the confusion matrix and ``curves.png``.

Each function returns the figure as an RGB array ``(H, W, 3) uint8`` (what the
trackers take); :func:`png_bytes` encodes one for the run folder. Drawing uses
matplotlib's object interface on the Agg canvas (no pyplot state, no display).
Class names can hold anything: every text drawn goes through :func:`safe_text`
(``$`` escaped so matplotlib never reads mathtext, control characters shown as
escapes, long names shortened), and LaTeX rendering is off whatever the user's
matplotlib settings say.
"""

from __future__ import annotations

import io
import math
import textwrap
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

MAX_LABEL = 24
"""Longest label drawn, in characters (longer ones end in an ellipsis)."""

CELL_INCHES = 1.1
"""Width of one image in a grid, in inches (at :data:`DPI`)."""

DPI = 100
"""Resolution of every figure."""


def safe_text(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` as matplotlib should draw it literally: ``$`` escaped, control characters as escapes, shortened."""
    shown = "".join(_visible(character) for character in str(text))
    if len(shown) > limit:
        shown = shown[:limit - 1] + "\u2026"
    return shown.replace("$", r"\$")


def _visible(character: str) -> str:
    if character == "\n":
        return "\\n"
    if character == "\t":
        return "\\t"
    if unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return f"\\u{ord(character):04x}"
    return character


@contextmanager
def drawing() -> Iterator[Any]:
    """A matplotlib ``Figure`` factory with LaTeX off and missing-glyph warnings silenced."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"text.usetex": False, "font.size": 8}), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Glyph ... missing from font(s)" for exotic names
        yield Figure


def rendered(figure: Any) -> np.ndarray:
    """A figure drawn on the Agg canvas, as an RGB array ``(H, W, 3) uint8``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 4) -> (H, W, 3)


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB array ``(H, W, 3) uint8`` as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def mosaic(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Images ``(N, C, H, W)`` (C 1 or 3, values 0..255) tiled into one ``(rows*(H+gap), columns*(W+gap), 3)`` uint8."""
    count, channels, height, width = images.shape
    rows = math.ceil(count / columns)
    pixels = np.clip(np.asarray(images, dtype=np.float32), 0, 255).round().astype(np.uint8)
    pixels = pixels.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=3)  # (N, H, W, 1) -> (N, H, W, 3)
    tiles = np.full((rows * columns, height + gap, width + gap, 3), 255, dtype=np.uint8)
    tiles[:count, :height, :width] = pixels
    tiles = tiles.reshape(rows, columns, height + gap, width + gap, 3)  # (R*K, h, w, 3) -> (R, K, h, w, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(rows * (height + gap), columns * (width + gap), 3)  # -> (R*h, K*w, 3)


def image_grid(images: np.ndarray, captions: Sequence[Sequence[str]], title: str) -> np.ndarray:
    """A grid of images with a caption on each, as an RGB array.

    Args:
        images: ``(N, C, H, W)``, C 1 (grayscale) or 3 (RGB), values 0..255 (what the network takes, before
            its normalisation).
        captions: One per image: its lines (each drawn literally, through :func:`safe_text`).
        title: Above the grid.
    """
    count, _, height, width = images.shape
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    tiled = mosaic(images, columns)
    lines = textwrap.wrap(safe_text(title, 200), max(24, int(columns * CELL_INCHES * 14)))  # ~14 characters an inch
    header = 0.15 + 0.17 * len(lines)  # inches above the grid
    with drawing() as Figure:
        figure = Figure(figsize=(columns * CELL_INCHES, rows * CELL_INCHES * height / width + header), dpi=DPI)
        axes = figure.add_axes((0, 0, 1, 1 - header / figure.get_figheight()))
        axes.imshow(tiled, interpolation="nearest" if max(height, width) < 64 else "antialiased")
        axes.set_axis_off()
        for index, caption in enumerate(captions[:count]):
            row, column = divmod(index, columns)
            text = "\n".join(safe_text(line) for line in caption)
            axes.text(column * (width + 2) + 0.5, row * (height + 2) + 0.5, text, fontsize=6, color="white",
                      va="top", ha="left", bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})
        figure.suptitle("\n".join(lines), fontsize=9, y=1 - 0.05 / figure.get_figheight(), va="top")
        return rendered(figure)


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], title: str) -> np.ndarray:
    """The confusion matrix (rows: true class, columns: predicted), coloured by the share of each row.

    Args:
        matrix: ``(K, K)`` counts.
        class_names: The K class names.
        title: Above the matrix.
    """
    classes = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = min(14.0, 2.5 + 0.4 * classes)
    with drawing() as Figure:
        figure = Figure(figsize=(side + 1.5, side), dpi=DPI)
        margin = 1.6 / side if classes <= 40 else 0.6 / side  # room for the class names
        axes = figure.add_axes((margin, margin, 0.98 - margin - 1.5 / (side + 1.5), 0.94 - margin))
        shown = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        figure.colorbar(shown, ax=axes, label="share of the true class", fraction=0.05, pad=0.03)
        if classes <= 40:
            labels = [safe_text(name, 16) for name in class_names]
            axes.set_xticks(range(classes), labels, rotation=90, fontsize=7)
            axes.set_yticks(range(classes), labels, fontsize=7)
        if classes <= 20:
            for (true, predicted), count in np.ndenumerate(matrix):
                if count:
                    axes.text(predicted, true, str(count), ha="center", va="center", fontsize=6,
                              color="white" if shares[true, predicted] > 0.5 else "black")
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(safe_text(title, 120))
        return rendered(figure)


def curves_image(history: Sequence[Mapping[str, float]], steps: Sequence[Mapping[str, float]],
                 per_class: Sequence[Mapping[str, Any]], best: Mapping[str, Any] | None,
                 class_names: Sequence[str], title: str) -> np.ndarray:
    """``curves.png``: losses, accuracies, the learning rate and per-class validation F1 against the epoch.

    Args:
        history: ``metrics.csv`` rows.
        steps: ``steps.csv`` rows (the step-level loss and learning rate).
        per_class: ``per_class.csv`` rows.
        best: ``{"epoch", "metric", "value"}`` of the best epoch (marked in every panel), or None.
        class_names: The class names.
        title: Above the panels.
    """
    with drawing() as Figure:
        figure = Figure(figsize=(11, 7.5), dpi=DPI)
        figure.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.92, wspace=0.15, hspace=0.3)
        loss, accuracy, rate, classes = figure.subplots(2, 2).ravel()
        _plot(loss, steps, "train/loss", "train loss (steps)", alpha=0.35, linewidth=0.8)
        for axes, key in ((loss, "loss"), (accuracy, "accuracy")):
            _plot(axes, history, f"train/{key}", f"train {key}", marker=".")
            _plot(axes, history, f"val/{key}", f"validation {key}", marker=".")
            axes.set_title(key)
        _plot(accuracy, history, "val/macro_f1", "validation macro F1", marker=".", linestyle="--")
        _plot(rate, steps or history, "lr", "learning rate")
        rate.set_title("learning rate")
        _per_class_panel(classes, per_class, class_names)
        for axes, corner in ((loss, "upper right"), (accuracy, "lower right"), (rate, "upper right"),
                             (classes, "lower right")):  # where the curves are not; "best" would search: slow
            if best is not None:
                axes.axvline(best["epoch"], color="grey", linestyle=":", label=safe_text(f"best ({best['metric']})"))
            axes.set_xlabel("epoch")
            if axes.has_data():
                axes.legend(fontsize=7, loc=corner)
        figure.suptitle(safe_text(title, 120))
        return rendered(figure)


def _plot(axes: Any, rows: Sequence[Mapping[str, Any]], key: str, label: str, **style: Any) -> None:
    points = [(row["epoch"], row[key]) for row in rows if key in row and "epoch" in row]
    if points:
        x, y = zip(*points)
        axes.plot(x, y, label=safe_text(label, 40), **style)


def _per_class_panel(axes: Any, per_class: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> None:
    """F1 of each class against the epoch (up to 10 classes), else the worst, median and best class."""
    axes.set_title("validation F1 per class")
    by_class: dict[int, list[tuple[float, float]]] = {}
    for row in per_class:
        by_class.setdefault(int(row["class"]), []).append((row["epoch"], row["f1"]))
    if not by_class:
        return
    if len(by_class) <= 10:
        for label, points in sorted(by_class.items()):
            name = class_names[label] if label < len(class_names) else str(label)
            axes.plot(*zip(*points), marker=".", label=safe_text(name, 20))
        return
    epochs = sorted({epoch for points in by_class.values() for epoch, _ in points})
    values = [[f1 for points in by_class.values() for e, f1 in points if e == epoch] for epoch in epochs]
    for statistic, label in ((np.min, "worst class"), (np.median, "median class"), (np.max, "best class")):
        axes.plot(epochs, [statistic(v) for v in values], marker=".", label=label)

"""The figures of a run drawn only in training: image grids and ``curves.png``.

Each function returns the figure as an RGB array ``(H, W, 3) uint8`` (what the
trackers take); :func:`common.plotting.png_bytes` encodes one for the run folder. Every figure is
made and rendered by :mod:`common.plotting`, as every figure of the project is:
class names go through :func:`common.plotting.safe_text` (control characters as
escapes, long names shortened), every text is drawn literally (no mathtext, no
LaTeX, whatever the user's matplotlib settings say), tick labels are plain numbers
and no text is cut off. The run's confusion matrix is
:func:`common.plotting.confusion_image`, drawn as evaluation draws its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from common.plotting import new_figure, render_figure, safe_text
from common.run_folder import MetricSpec

CELL_INCHES = 1.1
"""Width of one image in a grid, in inches."""


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
        captions: One per image: its lines (each drawn literally, through :func:`common.plotting.safe_text`).
        title: Above the grid.
    """
    count, _, height, width = images.shape
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    figure = new_figure(columns * CELL_INCHES, rows * CELL_INCHES * height / width + 0.4)
    axes = figure.subplots()
    axes.imshow(mosaic(images, columns), interpolation="nearest" if max(height, width) < 64 else "antialiased")
    axes.set_axis_off()
    for index, caption in enumerate(captions[:count]):
        row, column = divmod(index, columns)
        text = "\n".join(safe_text(line) for line in caption)
        axes.text(column * (width + 2) + 0.5, row * (height + 2) + 0.5, text, fontsize=6, color="white",
                  va="top", ha="left", bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})
    figure.suptitle(safe_text(title, 200), fontsize=9)
    return render_figure(figure)


PANELS = {"loss": ("loss", "train/loss", False, "upper right"),
          "accuracy": ("accuracy and scores", None, False, "lower right"),
          "lr": ("learning rate", "lr", True, "upper right")}
"""The panels of ``curves.png`` that a declared metric's ``panel`` names: title; the ``steps.csv`` column drawn with
it, and whether that curve replaces the metric's epoch points (the learning rate) or lies faintly under them (the
loss); the legend's corner (where the curves are not; "best" would search: slow)."""


def curves_image(history: Sequence[Mapping[str, float]], steps: Sequence[Mapping[str, float]],
                 per_class: Sequence[Mapping[str, Any]], best: Mapping[str, Any] | None,
                 class_names: Sequence[str], title: str, metrics: Sequence[MetricSpec]) -> np.ndarray:
    """``curves.png``: every declared metric with a ``panel`` against the epoch, and per-class validation F1.

    Args:
        history: ``metrics.csv`` rows.
        steps: ``steps.csv`` rows (the step-level loss and learning rate).
        per_class: ``per_class.csv`` rows.
        best: ``{"epoch", "metric", "value"}`` of the best epoch (marked in every panel), or None.
        class_names: The class names.
        title: Above the panels.
        metrics: The run's declared metrics (:mod:`train.metrics`): each is drawn in the panel it names.
    """
    figure = new_figure(11, 7.5, layout="none")  # fixed texts: placed by hand, half the cost of a layout engine
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.92, wspace=0.15, hspace=0.3)
    *panels, classes = figure.subplots(2, 2).ravel()
    corners = []
    for axes, (panel, (panel_title, step_key, replaces, corner)) in zip(panels, PANELS.items()):
        stepped = step_key is not None and any(step_key in row for row in steps)
        drawn = [spec for spec in metrics if spec.panel == panel]
        for index, spec in enumerate(drawn):
            if stepped and spec.name == step_key:
                style = {"linewidth": 1.2} if replaces else {"alpha": 0.35, "linewidth": 0.8}
                _plot(axes, steps, step_key, spec.label if replaces else f"{spec.label} (steps)", **style)
                if replaces:
                    continue
            _plot(axes, history, spec.name, spec.label, marker=".", linestyle="-" if index < 2 else "--")
        axes.set_title(panel_title)
        corners.append((axes, corner))
    _per_class_panel(classes, per_class, class_names)
    for axes, corner in [*corners, (classes, "lower right")]:
        if best is not None:
            axes.axvline(best["epoch"], color="grey", linestyle=":", label=safe_text(f"best ({best['metric']})"))
        axes.set_xlabel("epoch")
        if axes.has_data():
            axes.legend(fontsize=7, loc=corner)
    figure.suptitle(safe_text(title, 120))
    return render_figure(figure)


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
        if row.get("support", 1) > 0:  # a class without validation samples has no F1 to follow
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

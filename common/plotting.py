"""Every figure of the project: one figure factory, one rc context, one way out (a PNG file or an RGB array).

Figures draw class names, file names and folder names that come from data sets and
result files, so no text drawn may be read as markup, and no text may fall outside
the saved image. The one way to draw a figure::

    figure = new_figure(5.5, 4)            # a Figure on the Agg canvas: no pyplot, no display
    axes = figure.subplots()
    axes.set_title(safe_text(class_name))  # names: control characters as escapes, shortened
    save_figure(figure, folder / "x.png")  # or render_figure(figure): an RGB array

:func:`save_figure` and :func:`render_figure` do everything that makes text safe,
in one place, for every figure:

- inside :func:`drawing` (a ``matplotlib.rc_context``: nothing changes for other
  code), every text of the figure is drawn literally: mathtext parsing and LaTeX are
  off (``text.parse_math``, ``text.usetex``), so ``$x^{$``, ``\\mathdefault{1}`` and
  ``<img src=x>`` are drawn as written and ``$`` needs no escaping;
- every axis labels its ticks with plain numbers: a log or symlog axis reads
  ``100`` or ``1e+06``, never ``$\\mathdefault{10^{2}}$`` (matplotlib's log
  formatters write mathtext, which would be drawn as raw text with parsing off);
- a title wider than its Axes' column, and any other title, axis label or legend
  entry wider than the figure, is wrapped at spaces;
- the saved image is the box that holds every artist, text included (matplotlib's
  tight bounding box, as ``bbox_inches="tight"`` finds it), with a pad: nothing is
  cut off, and a text past the figure's edge widens the image.

:func:`confusion_figure` is the one confusion-matrix drawer (training and
evaluation). Nothing here imports matplotlib at module level: the evaluation
machine's commands that draw nothing never load it.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

MAX_LABEL = 24
"""Longest name drawn by default, in characters (longer ones end in an ellipsis)."""

DPI = 100
"""Resolution of a figure unless it asks for another."""

PAD_INCHES = 0.1
"""Margin around the box that holds every text of a saved figure."""

MIN_COLUMNS = 12
"""Narrowest a long title or label is wrapped to, in characters."""

SAFE_RC = {"text.parse_math": False, "text.usetex": False, "axes.formatter.use_mathtext": False}
"""The matplotlib settings every figure is drawn with: every text literal, no TeX anywhere."""


def safe_text(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` as it should be drawn: control characters and line breaks as escapes, at most ``limit`` characters.

    ``$`` and backslashes stay as they are: every figure is drawn with mathtext
    parsing off, so they are drawn literally.
    """
    shown = "".join(_visible(character) for character in str(text))
    return shown if len(shown) <= limit else shown[:limit - 1] + "\u2026"


def _visible(character: str) -> str:
    if character == "\n":
        return "\\n"
    if character == "\t":
        return "\\t"
    if unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return f"\\u{ord(character):04x}"
    return character


@contextmanager
def drawing() -> Iterator[None]:
    """The rc context figures are drawn in (:data:`SAFE_RC`), with missing-glyph warnings silenced.

    :func:`save_figure` and :func:`render_figure` draw inside it; code that makes its
    figures through pyplot (Optuna's plots, which also change the style) runs inside it too.
    """
    import matplotlib

    with matplotlib.rc_context(SAFE_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph", category=UserWarning)  # exotic names: "Glyph ... missing"
        yield


def new_figure(width: float, height: float, dpi: int = DPI, layout: str = "constrained") -> Any:
    """A matplotlib ``Figure`` on the Agg canvas (not known to pyplot: nothing to close, no display needed).

    Args:
        width: Width in inches.
        height: Height in inches.
        dpi: Pixels per inch.
        layout: matplotlib's layout engine: ``"constrained"`` (titles, labels and
            colour bars make room for themselves), or ``"none"`` for axes placed by hand.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` to ``path`` as a PNG: every text literal and inside the image (see the module docstring)."""
    Path(path).write_bytes(png_bytes(_finished(figure)))


def render_figure(figure: Any) -> np.ndarray:
    """``figure`` drawn as :func:`save_figure` draws it, as an RGB array ``(H, W, 3) uint8``."""
    return _finished(figure)


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB array ``(H, W, 3) uint8`` as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, for third-party code that draws through pyplot.

    Only Optuna's plots need it (they make their own figures); call them inside
    :func:`drawing`, save with :func:`save_figure` and close the figure. The project's
    own figures use :func:`new_figure`. pyplot needs a backend for the process: Agg.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finished(figure: Any) -> np.ndarray:
    """The one way out of every figure: its saved area as an RGB array ``(H, W, 3) uint8``.

    Every text made literal, tick labels plain, long texts wrapped; the figure drawn
    once and cut to :func:`_saved_area`, or, where a text reaches past the figure's
    edge, drawn again by ``savefig`` on that larger area.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    from PIL import Image

    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    with drawing():
        for text in figure.findobj(Text):  # made outside drawing(), or by code that asked for TeX
            text.set_usetex(False)
            text.set_parse_math(False)
        _plain_tick_labels(figure)
        _wrap_long_texts(figure, canvas.get_renderer())
        canvas.draw()
        area, inside = _saved_area(figure, canvas.get_renderer())
        if inside:
            pixels = np.asarray(canvas.buffer_rgba())  # (H, W, 4), the top row first
            height, width = pixels.shape[:2]
            top, bottom = max(0, height - int(area.y1)), min(height, height - int(area.y0))
            return pixels[top:bottom, max(0, int(area.x0)):min(width, int(area.x1)), :3].copy()  # -> (h, w, 3)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=figure.dpi,
                       bbox_inches=area.transformed(figure.dpi_scale_trans.inverted()))  # pixels -> inches
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))  # (H, W, 4) RGBA -> (H, W, 3)


def _saved_area(figure: Any, renderer: Any) -> tuple[Any, bool]:
    """The area to save of a drawn figure, in display pixels: the box that holds every artist, with
    :data:`PAD_INCHES` around it, on whole pixels; and whether that box lies inside the figure (then the area is
    cut to the figure: the pad past its edge would be blank)."""
    from matplotlib.transforms import Bbox

    held = figure.get_tightbbox(renderer).transformed(figure.dpi_scale_trans)  # inches -> display pixels
    frame = figure.bbox
    inside = held.x0 >= -0.5 and held.y0 >= -0.5 and held.x1 <= frame.x1 + 0.5 and held.y1 <= frame.y1 + 0.5
    padded = held.padded(PAD_INCHES * figure.dpi)
    if inside:
        padded = Bbox.intersection(padded, frame)
    return Bbox.from_extents(math.floor(padded.x0), math.floor(padded.y0), math.ceil(padded.x1),
                             math.ceil(padded.y1)), inside


def _plain_tick_labels(figure: Any) -> None:
    """Give every axis of every Axes (colour bars included) formatters that write plain numbers."""
    for axes in figure.get_axes():
        for axis in (axes.xaxis, axes.yaxis):
            for minor, current, replace in ((False, axis.get_major_formatter(), axis.set_major_formatter),
                                            (True, axis.get_minor_formatter(), axis.set_minor_formatter)):
                plain = _plain(current, axis, minor)
                if plain is not current:
                    replace(plain)


def _plain(formatter: Any, axis: Any, minor: bool) -> Any:
    """``formatter``, or one that writes the same ticks as plain numbers where it would write mathtext."""
    from matplotlib import ticker

    if isinstance(formatter, ticker.LogFormatterMathtext):  # log and symlog scales: $\mathdefault{10^{2}}$
        base = getattr(axis.get_transform(), "base", 10)
        return _plain_log_formatter()(base, labelOnlyBase=formatter.labelOnlyBase,
                                      minor_thresholds=formatter.minor_thresholds)
    if isinstance(formatter, ticker.LogitFormatter):
        return ticker.NullFormatter() if minor else ticker.FuncFormatter(lambda value, _: f"{value:g}")
    if isinstance(formatter, ticker.ScalarFormatter):  # its offset text (x10^5) and LaTeX, if asked for
        formatter.set_useMathText(False)
        formatter.set_usetex(False)
    return formatter


@functools.cache
def _plain_log_formatter() -> type:
    """matplotlib's ``LogFormatter`` (it picks which ticks of a log axis to label), its labels as ``f"{x:g}"``:
    ``0.01``, ``100``, ``10000``, ``1e+06`` (its own mixes ``1e4`` with ``1e+06``)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    return PlainLogFormatter


def _wrap_long_texts(figure: Any, renderer: Any) -> None:
    """Wrap every title longer than its Axes' column, and every other figure text, axis label or legend entry
    longer than the figure."""
    width, height = figure.bbox.width, figure.bbox.height
    texts = [(text, width, height) for text in figure.texts]  # suptitle, supxlabel, supylabel, figure.text
    texts += [(text, width, height) for legend in figure.legends for text in legend.get_texts()]
    for axes in figure.get_axes():
        texts += [(axes.title, _column_width(axes, width), height), (axes.xaxis.label, width, height),
                  (axes.yaxis.label, width, height)]
        legend = axes.get_legend()
        texts += [(text, width, height) for text in (legend.get_texts() if legend else [])]
    for text, room_width, room_height in texts:
        _wrap(text, room_width, room_height, renderer)


def _column_width(axes: Any, figure_width: float) -> float:
    """The width an Axes' title may take, in display pixels: its share of the figure's columns (the Axes itself is
    narrower until the layout runs), or the Axes' own width where it was placed by hand."""
    spec = axes.get_subplotspec()
    if spec is None:
        return axes.bbox.width
    return max(axes.bbox.width, figure_width * len(spec.colspan) / spec.get_gridspec().ncols)


def _wrap(text: Any, room_width: float, room_height: float, renderer: Any) -> None:
    """Wrap ``text`` at spaces so that its length fits its room (display pixels); horizontal or vertical texts only."""
    content, angle = text.get_text(), text.get_rotation() % 180
    if not content or not text.get_visible() or angle not in (0, 90):
        return
    extent = text.get_window_extent(renderer)
    length, space = (extent.width, room_width) if angle == 0 else (extent.height, room_height)
    if length <= space:
        return
    lines = content.split("\n")
    columns = max(MIN_COLUMNS, int(max(len(line) for line in lines) * 0.9 * space / length))  # letters differ in width
    text.set_text("\n".join(part for line in lines for part in (textwrap.wrap(line, columns) or [""])))


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str, cells: str = "counts") -> Any:
    """The confusion matrix (rows: true class, columns: predicted), coloured by the share of each true class.

    The one drawer of a confusion matrix, for training and evaluation alike: the
    classes are named up to 40 classes, the cells written up to 20.

    Args:
        matrix: ``(K, K)`` counts.
        class_names: The K class names (drawn through :func:`safe_text`).
        title: Above the matrix.
        cells: What a cell says: ``"counts"``, or ``"shares"`` (its share of the row: recall on the diagonal).

    Returns:
        The figure, for :func:`save_figure` or :func:`render_figure`.

    Raises:
        ValueError: For another ``cells``.
    """
    if cells not in ("counts", "shares"):
        raise ValueError(f"cells: 'counts' or 'shares', not {cells!r}")
    classes = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)  # (K, 1)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = min(14.0, 2.5 + 0.4 * classes)
    figure = new_figure(side + 1.5, side, layout="none")  # placed by hand: half the cost of a layout engine
    margin = 1.6 / side if classes <= 40 else 0.6 / side  # room for the class names (the saved area is cut to fit)
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
                share = shares[true, predicted]
                axes.text(predicted, true, str(int(count)) if cells == "counts" else f"{share:.2f}", ha="center",
                          va="center", fontsize=6, color="white" if share > 0.5 else "black")
    axes.set(xlabel="predicted class", ylabel="true class")
    axes.set_title(safe_text(title, 120))
    return figure


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], title: str) -> np.ndarray:
    """A training run's confusion matrix (:func:`confusion_figure`, counts in the cells) as an RGB array ``(H, W, 3)``.

    Args:
        matrix: ``(K, K)`` counts, rows true classes, columns predicted classes.
        class_names: The K class names.
        title: Above the matrix.
    """
    return render_figure(confusion_figure(matrix, class_names, title))

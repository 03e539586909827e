"""Every figure the project draws, drawn with hostile class names: every text literal and inside the saved image.

Each figure leaves through :mod:`common.plotting`'s one way out (``_finished``, behind
``save_figure`` and ``render_figure``). The ``drawn`` fixture wraps it and keeps, for
every figure, the area that was saved, the size of the image that came out and every
text matplotlib drew (titles, suptitles, axis labels, tick labels, legend entries,
annotations), and :func:`check` asserts for each text:

- it was drawn as written: mathtext parsing and LaTeX off, and no ``\\mathdefault``
  but inside a hostile name drawn literally;
- a tick label of a numeric axis (log and symlog ones included) is a plain number;
- its window extent lies inside the saved area, which is the size of the image.

Each figure that draws class names also shows the hostile name literally (``$`` not
escaped, ``\\mathdefault`` kept). Prediction and the review pages draw no figure
(``test_every_figure_leaves_through_common_plotting`` would see one). The learning-rate
finder and the sweep plots need the training packages and are skipped without them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PIL import Image

import common.plotting as plotting
from common.paths import PROJECT_ROOT
from common.plotting import confusion_figure, new_figure, render_figure, safe_text, save_figure
from common.results import Predictions, write_predictions

HOSTILE = "$\\mathdefault{x}$ <img src=x onerror=alert(1)> =cmd|' /C calc'!A0"
"""A class name that is mathtext (and would be TeX), HTML and a spreadsheet formula at once."""

HOSTILE_IN_DATA = "$x^{$ <img src=x onerror=alert(1)> =cmd|' /C calc'!A0"
"""The same in a data set (``classes.txt`` refuses backslashes): broken mathtext, HTML, a formula."""

LONG = "a class whose name goes on and on " * 6
"""A name far longer than any label (shortened with an ellipsis)."""

CONTROL = "line\nbreak\tand\x07bell"
"""A name with control characters (shown as escapes)."""

NUMBER = re.compile(r"[-\u2212]?(\d+(\.\d*)?|\.\d+)(e[-+\u2212]?\d+)?%?")
"""A plain number, as a tick label writes it (matplotlib's minus may be U+2212)."""


def literal(name: str) -> str:
    """The start of a name that every figure keeps: names are shortened to 16 characters at the least."""
    return name[:14]


@dataclass
class Drawn:
    """One figure that left through common.plotting: what was saved and every text drawn."""

    figure: Any
    area: Any = None
    inside: bool = True
    shape: tuple[int, ...] = ()
    texts: list[Any] = field(default_factory=list)
    extents: list[Any] = field(default_factory=list)

    @property
    def label(self) -> str:
        """A name for messages: the suptitle, else the first title."""
        titles = [self.figure.get_suptitle()] + [a.get_title() for a in self.figure.get_axes()]
        return next((t for t in titles if t), "a figure without a title")[:60]

    def strings(self) -> list[str]:
        """Every text drawn, line breaks (from wrapping) taken out."""
        return [text.get_text().replace("\n", "") for text in self.texts]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Drawn]]:
    """The figures drawn while the test runs, with the texts of their last drawing and the area saved."""
    from matplotlib.text import Text

    figures: list[Drawn] = []
    seen: dict[int, Any] = {}
    draw, finished, saved_area = Text.draw, plotting._finished, plotting._saved_area

    def recording_draw(self: Any, renderer: Any) -> None:
        draw(self, renderer)
        if self.get_visible() and self.get_text():
            seen[id(self)] = self

    def recording_area(figure: Any, renderer: Any) -> tuple[Any, bool]:
        area, inside = saved_area(figure, renderer)
        figures[-1].area, figures[-1].inside = area, inside
        return area, inside

    def recording_finished(figure: Any) -> np.ndarray:
        figures.append(Drawn(figure))
        seen.clear()
        pixels = finished(figure)
        if not figures[-1].inside:  # savefig drew it in a frame moved to the area: draw it again in its own frame
            seen.clear()
            with plotting.drawing():
                figure.canvas.draw()
        renderer = figure.canvas.get_renderer()  # now: pyplot's figures lose their canvas when closed
        texts = list(seen.values())
        figures[-1].shape, figures[-1].texts = pixels.shape, texts
        figures[-1].extents = [text.get_window_extent(renderer) for text in texts]
        return pixels

    recording_draw._supports_rasterization = True  # as matplotlib's own draw methods say
    monkeypatch.setattr(Text, "draw", recording_draw)
    monkeypatch.setattr(plotting, "_saved_area", recording_area)
    monkeypatch.setattr(plotting, "_finished", recording_finished)
    yield figures


def numeric_tick_labels(figure: Any) -> dict[int, Any]:
    """``id(tick label) -> axis`` for the tick labels matplotlib computes (colour bars included); not those of ticks
    placed by hand (``set_xticks(positions, names)``: class names)."""
    from matplotlib.ticker import FixedLocator

    found = {}
    for axes in figure.get_axes():
        for axis in (axes.xaxis, axes.yaxis):
            for ticks, locator in ((axis.majorTicks, axis.get_major_locator()),
                                   (axis.minorTicks, axis.get_minor_locator())):
                if not isinstance(locator, FixedLocator):
                    found.update({id(label): axis for tick in ticks for label in (tick.label1, tick.label2)})
    return found


def check(figure: Drawn, names: tuple[str, ...] = ()) -> None:
    """Every text of ``figure`` literal, plain numbers on numeric axes, inside the saved area; ``names`` shown."""
    where = figure.label
    assert figure.texts, f"{where}: no text drawn"
    assert abs(figure.area.width - figure.shape[1]) <= 1 and abs(figure.area.height - figure.shape[0]) <= 1, \
        f"{where}: saved area {figure.area.bounds} is not the image {figure.shape}"
    numeric = numeric_tick_labels(figure.figure)
    for text, box in zip(figure.texts, figure.extents):
        content = text.get_text()
        assert not text.get_usetex() and not text.get_parse_math(), f"{where}: {content!r} would be read as TeX"
        assert "\\mathdefault" not in content.replace("\n", "").replace(literal(HOSTILE), ""), \
            f"{where}: {content!r} holds raw TeX"
        if id(text) in numeric:
            assert NUMBER.fullmatch(content), f"{where}: tick label {content!r} of a {numeric[id(text)].get_scale()} axis"
        assert (box.x0 >= figure.area.x0 - 1 and box.x1 <= figure.area.x1 + 1 and box.y0 >= figure.area.y0 - 1
                and box.y1 <= figure.area.y1 + 1), \
            f"{where}: {content!r} at {box.bounds} reaches outside the saved area {figure.area.bounds}"
    for name in names:
        assert any(literal(name) in string for string in figure.strings()), \
            f"{where}: {literal(name)!r} not drawn literally in {figure.strings()}"


def check_all(figures: list[Drawn], count: int, names: tuple[str, ...]) -> None:
    """``count`` figures drawn, each checked; each of ``names`` shown by every figure that shows names."""
    assert len(figures) == count, [f.label for f in figures]
    for figure in figures:
        check(figure, names if any(literal(n) in s for n in names for s in figure.strings()) else ())


# -- the one way out ------------------------------------------------------------------------------------------------

def test_safe_text_shows_control_characters_and_shortens_but_keeps_dollars_and_backslashes():
    assert safe_text(CONTROL, 40) == "line\\nbreak\\tand\\u0007bell"
    assert safe_text(HOSTILE) == HOSTILE[:23] + "\u2026" and safe_text(HOSTILE, 100) == HOSTILE
    assert safe_text("a\u2028b\u202ec") == "a\\u2028b\\u202ec" and len(safe_text(LONG, 40)) == 40


def test_the_confusion_matrix_writes_counts_or_shares_only():
    with pytest.raises(ValueError, match="cells: 'counts' or 'shares'"):
        confusion_figure(np.eye(2), ["a", "b"], "t", cells="percent")


def test_log_axes_read_plain_numbers_and_long_titles_are_wrapped_inside(drawn):
    figure = new_figure(8, 6)
    axes = figure.subplots(1, 3)
    axes[0].plot([1, 10, 1e5], [1, 2, 3])
    axes[0].set_xscale("log")
    axes[1].bar([0, 1, 2], [0, 3, 300])
    axes[1].set_yscale("symlog")
    axes[2].plot([0.01, 0.5, 0.99], [1, 2, 3])
    axes[2].set_xscale("logit")
    axes[1].set_title(f"{HOSTILE} " * 4)
    figure.suptitle(f"{LONG}{HOSTILE}")
    with matplotlib.rc_context({"text.usetex": True, "text.parse_math": True}):  # a user's settings
        image = render_figure(figure)
        assert matplotlib.rcParams["text.usetex"] and matplotlib.rcParams["text.parse_math"]  # left as they were
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    check(drawn[0], (HOSTILE,))
    assert "\n" in figure.texts[0].get_text() and "\n" in axes[1].get_title()  # wrapped: the figure is 8 inches wide
    labels = [t.get_text() for t in axes[0].get_xticklabels() + axes[1].get_yticklabels() if t.get_text()]
    assert {"1", "100", "10000", "0", "10"} <= set(labels), labels


def test_a_text_past_the_figure_edge_widens_the_saved_image(drawn, tmp_path):
    figure = new_figure(3, 2, layout="none")
    figure.subplots().plot([0, 1])
    figure.text(1.05, 0.5, "past the right edge")
    save_figure(figure, tmp_path / "wide.png")
    check(drawn[0])
    with Image.open(tmp_path / "wide.png") as image:
        assert image.width > 3 * plotting.DPI and image.size == (drawn[0].shape[1], drawn[0].shape[0])


def test_every_figure_leaves_through_common_plotting():
    """No module draws past the one way out: no savefig, no pyplot figure, no Figure made elsewhere."""
    offending = []
    for package in ("common", "datatools", "train", "deploy", "evaluate", "predict", "networks", "pipeline", "bench",
                    "tools"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if path == PROJECT_ROOT / "common" / "plotting.py":
                continue
            source = path.read_text(encoding="utf-8")
            offending += [f"{path.relative_to(PROJECT_ROOT)}: {pattern}" for pattern in (
                ".savefig(", "matplotlib.pyplot", "plt.subplots(", "plt.figure(", "matplotlib.figure", "tight_layout(",
                "rc_context(", "rcParams") if pattern in source]
    assert offending == []


# -- training ---------------------------------------------------------------------------------------------------------

def test_training_figures(drawn):
    from common.plotting import confusion_image
    from train.metrics import EPOCH_METRICS
    from train.watch.plots import curves_image, image_grid

    names = [HOSTILE, LONG, CONTROL, "cat"]
    rng = np.random.default_rng(0)
    image_grid(rng.integers(0, 256, (4, 3, 16, 16)), [[name, f"pred: {HOSTILE}"] for name in names], f"{LONG} batch")
    confusion_image(rng.integers(0, 9, (4, 4)), names, f"confusion {HOSTILE}")
    history = [{"epoch": e, "train/loss": 2 / e, "val/loss": 2.2 / e, "train/accuracy": 0.5, "val/accuracy": 0.6,
                "lr": 10.0 ** -e, "val/macro_f1": 0.4} for e in (1, 2, 3)]
    per_class = [{"epoch": e, "class": k, "f1": 0.2 * k} for e in (1, 2, 3) for k in range(4)]
    curves_image(history, [], per_class, {"epoch": 2, "metric": HOSTILE, "value": 1.0}, names, f"run {HOSTILE}",
                 EPOCH_METRICS)
    check_all(drawn, 3, (HOSTILE,))
    assert all(any(literal(HOSTILE) in s for s in figure.strings()) for figure in drawn)
    assert any("line\\nbreak" in s for figure in drawn for s in figure.strings())


@pytest.mark.slow  # imports torch
def test_learning_rate_finder_figure(drawn, tmp_path):
    pytest.importorskip("torch")
    from train.experiments.lr_find import _plot

    lrs = list(np.geomspace(1e-6, 1.0, 60))
    losses = [2.3 - 0.3 * math.log10(lr / 1e-6) if lr < 1e-2 else 4.0 for lr in lrs]
    _plot(tmp_path / "lr_find.png", lrs, losses, losses, 1e-3)
    check_all(drawn, 1, ())
    ticks = [t.get_text().replace("\u2212", "-") for t in drawn[0].figure.axes[0].get_xticklabels()]
    assert {"1e-06", "0.0001", "0.01", "1"} <= set(ticks), ticks


@pytest.mark.slow  # imports torch and Optuna
def test_sweep_figures(drawn, tmp_path):
    pytest.importorskip("torch")
    optuna = pytest.importorskip("optuna")
    from train.experiments.sweep import _plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("optim.lr", 1e-5, 1e-1, log=True) * 100
                   + trial.suggest_float(HOSTILE, 0.0, 1.0), n_trials=8)
    assert _plots(study, tmp_path, 8) == {"history.png": "history.png", "importance.png": "importance.png"}
    check_all(drawn, 2, (HOSTILE,))
    assert any(literal(HOSTILE) in s for s in drawn[1].strings())


# -- evaluation -------------------------------------------------------------------------------------------------------

def predictions(folder: Path, names: list[str], strength: float, seed: int) -> Path:
    """An evaluation's ``predictions.csv`` of 90 samples; the last class has none (the PR title names it)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(90) % (len(names) - 1)
    logits = rng.normal(size=(90, len(names)))
    logits[np.arange(90), labels] += strength
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    folder.mkdir(parents=True)
    write_predictions(folder / "predictions.csv", Predictions([f"raw/{i}.png" for i in range(90)], labels,
                                                              probabilities.astype(np.float32), names))
    return folder / "predictions.csv"


def test_evaluation_and_compare_figures(drawn, tmp_path):
    from evaluate.compare import compare_evaluations
    from evaluate.evaluation import EvaluateOptions, rescore

    names = [HOSTILE, CONTROL, "$x^{$", "cat", LONG]
    rescore(predictions(tmp_path / "a", names, 1.0, seed=0), options=EvaluateOptions(bootstrap=0))
    assert len(drawn) == 5  # PR curves, two confusion matrices, reliability, bad cases
    predictions(tmp_path / "b", names, 2.5, seed=1)  # compare reads predictions.csv only
    compare_evaluations(tmp_path / "a", tmp_path / "b", bootstrap=0)
    check_all(drawn, 6, (HOSTILE, "$x^{$"))
    labels = [" ".join(figure.label.split()) for figure in drawn[:5]]  # a narrow title wraps
    assert [label.split(",")[0].split(" (")[0].split(":")[0] for label in labels] == [
        "Precision-recall", "Confusion matrix", "Confusion matrix", "Reliability", "Most confident mistakes"], labels
    reliability = drawn[3].figure.axes[1]
    assert reliability.get_yscale() == "symlog"
    assert [t.get_text() for t in reliability.get_yticklabels() if t.get_text()][:3] == ["0", "1", "10"]
    for figure in (drawn[0], drawn[1], drawn[2], drawn[4]):
        assert any(literal(HOSTILE) in s for s in figure.strings()), figure.label


# -- inspection -------------------------------------------------------------------------------------------------------

def test_inspection_figures(drawn, tmp_path):
    from datatools.inspect import inspect_dataset
    from tests.datatools.small_sets import pattern

    names = [HOSTILE_IN_DATA, LONG.strip(), "cat"]
    root = tmp_path / "hostile"
    (root / "lists").mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    for split, numbers in (("train", range(0, 4)), ("test", range(4, 6))):
        lines = []
        for label in range(len(names)):
            for number in numbers:
                (root / "raw" / f"c{label}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(pattern(10 * label + number, 16)).save(root / "raw" / f"c{label}" / f"{number}.png")
                lines.append(f"raw/c{label}/{number}.png {label}\n")
        (root / "lists" / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
    inspect_dataset(str(root), out=tmp_path / "inspected", per_class=3)
    check_all(drawn, 3, (HOSTILE_IN_DATA,))  # samples_test.png, samples_train.png, class_counts.png
    assert all(any(literal(HOSTILE_IN_DATA) in s for s in figure.strings()) for figure in drawn), [
        (figure.label, figure.strings()) for figure in drawn]

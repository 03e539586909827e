"""What an evaluation figure is, and the typed values it works with.

A figure (accuracy, F1, AP, calibration, balanced accuracy, ...) is one class, registered
by name in :mod:`evaluate.figures`, that does everything about itself, as detectron2's
``DatasetEvaluator`` does; the reports only lay out what the figures give them:

- ``compute``: its value on one model's predictions (:class:`Evidence` -> :class:`FigureValue`);
- ``resample_rows`` + ``resampled`` (optional): its value on every bootstrap resample,
  from the same draws as every other figure; they give its 95% interval in
  ``metrics.json`` and its paired test in ``evaluate compare``;
- ``write_json``: its keys in ``metrics.json``; ``write_files``: files of its own;
- ``summary`` / ``columns`` / ``section`` / ``headline`` / ``definition``: how
  ``result.txt`` and ``report.html`` show it;
- ``deltas`` / ``class_deltas`` / ``paired_test`` / ``verdict_sentence``: what
  ``evaluate compare`` shows.

Every hook has a default that adds nothing; :class:`evaluate.figures.kinds.ScalarFigure`
(one number) and :class:`evaluate.figures.kinds.PerClassFigure` (a number per class and
its averages) fill them in, so most figures only compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evaluate.metrics import Curve
from evaluate.uncertainty import percentile_interval

AVERAGE_KINDS = ("macro", "macro_all_classes", "weighted", "micro")
"""The averages of a per-class figure, in the order ``metrics.json`` and the reports give them."""

PAIRED_BOOTSTRAP = "paired bootstrap (percentile interval of B - A)"


@dataclass(frozen=True)
class ScoringOptions:
    """Choices that shape some figures.

    Attributes:
        precision_targets: Precisions to find per-class operating points for.
        recall_targets: Recalls to find per-class operating points for.
        top_k: Values of k for top-k accuracy (those above the class count are left out).
    """

    precision_targets: tuple[float, ...] = (0.95, 0.99)
    recall_targets: tuple[float, ...] = (0.95,)
    top_k: tuple[int, ...] = (1, 2, 3, 5)


@dataclass(frozen=True)
class Evidence:
    """One model's predictions on a labelled set, and what every figure is computed from.

    Attributes:
        labels: True class indices ``(N,)``.
        probabilities: Class scores ``(N, K)``.
        class_names: ``K`` names, index = label.
        predicted: Predicted class per sample ``(N,)`` (the arg-max; ties: the lower index).
        confusion: Counts ``(K, K)``, rows = true class, columns = predicted class.
        curves: Precision-recall curves per class name, plus ``micro`` and ``macro``.
        options: The scoring options.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    predicted: np.ndarray
    confusion: np.ndarray
    curves: dict[str, Curve]
    options: ScoringOptions = ScoringOptions()

    @property
    def support(self) -> np.ndarray:
        """True samples per class ``(K,)``."""
        return self.confusion.sum(axis=1)

    @property
    def present(self) -> np.ndarray:
        """Classes with at least one true sample ``(K,)``: the ones macro averages cover."""
        return self.support > 0


@dataclass(frozen=True)
class Averages:
    """The averages of a per-class figure (see :mod:`evaluate.figures.kinds`)."""

    macro: float
    macro_all_classes: float
    weighted: float
    micro: float

    def items(self) -> list[tuple[str, float]]:
        """``(kind, value)`` in :data:`AVERAGE_KINDS` order."""
        return [(kind, getattr(self, kind)) for kind in AVERAGE_KINDS]


@dataclass(frozen=True)
class FigureValue:
    """One figure's values on one set of predictions.

    Attributes:
        value: The figure (for a per-class figure its macro average; None when it has no
            single number, e.g. top-k or operating points).
        interval: 95% interval of ``value`` ``(low, high)``, or None.
        per_class: Per-class values ``(K,)``, or None.
        averages: Averages of ``per_class``, or None.
        per_class_interval: 95% intervals per class ``(K, 2)`` (NaN for a class without
            samples), or None.
        detail: Whatever else the figure keeps (its own typed object), or None.
    """

    value: float | None
    interval: tuple[float, float] | None = None
    per_class: np.ndarray | None = None
    averages: Averages | None = None
    per_class_interval: np.ndarray | None = None
    detail: Any = None


@dataclass(frozen=True)
class SumRows:
    """Weighted sums a figure needs on every resample, beyond the confusion counts.

    Entry ``i`` adds image ``images[i]``'s draw count to row ``rows[i]`` (rows ``0 ..
    size-1``); the bootstrap gets every row of every figure from one sparse product.

    Attributes:
        rows: Row per entry.
        images: Image index per entry.
        size: Number of rows.
        layout: Whatever the figure needs to read its rows back (handed back in
            :class:`DrawnSums`).
    """

    rows: np.ndarray
    images: np.ndarray
    size: int
    layout: Any = None


@dataclass(frozen=True)
class DrawnSums:
    """What one chunk of ``b`` bootstrap resamples gives a figure.

    Attributes:
        confusion: Confusion counts per resample ``(K, K, b)`` (float64), rows = true class.
        present: Classes with samples in the whole set ``(K,)``.
        sums: The figure's own rows ``(size, b)`` (it may overwrite them), or None.
        layout: The ``layout`` of its :class:`SumRows`.
    """

    confusion: np.ndarray
    present: np.ndarray
    sums: np.ndarray | None = None
    layout: Any = None


@dataclass(frozen=True)
class Drawn:
    """A figure's values on bootstrap resamples.

    Attributes:
        value: The figure per resample ``(B,)`` (for a per-class figure: its macro average).
        per_class: Per-class values per resample ``(B, K)``, or None.
    """

    value: np.ndarray
    per_class: np.ndarray | None = None


@dataclass
class MetricsDocument:
    """``metrics.json`` while the figures write into it.

    Attributes:
        top: Top-level keys.
        averages: ``macro``, ``macro_all_classes``, ``weighted``, ``micro``: kind -> keys.
        per_class: One dict per class (``class``, ``index``, ``support`` to start with).
    """

    per_class: list[dict[str, Any]]
    top: dict[str, Any] = field(default_factory=dict)
    averages: dict[str, dict[str, Any]] = field(default_factory=lambda: {kind: {} for kind in AVERAGE_KINDS})


@dataclass(frozen=True)
class Line:
    """One line of the summary: ``label: text note`` in result.txt, a table row in report.html."""

    label: str
    text: str
    note: str = ""


@dataclass(frozen=True)
class Column:
    """A column of the per-class table, and its cells in the averages table.

    Attributes:
        header: Column header.
        cells: One cell per class (the report shows ``-`` for a class without samples).
        averages: Cells for :data:`AVERAGE_KINDS`, in that order, or None (no averages).
    """

    header: str
    cells: list[str]
    averages: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Section:
    """A block of its own in the reports: plain lines for result.txt, escaped HTML for report.html."""

    text: list[str]
    html: str


@dataclass(frozen=True)
class Delta:
    """One row of ``evaluate compare``'s metric table: the figure for A and B."""

    key: str
    a: float
    b: float

    def to_json(self) -> dict[str, float]:
        """``{"a", "b", "delta"}`` with delta = B - A."""
        return {"a": self.a, "b": self.b, "delta": self.b - self.a}


@dataclass(frozen=True)
class Pair:
    """Two models on the same samples, for a paired test.

    Attributes:
        a: Model A's evidence.
        b: Model B's evidence (same samples, same order).
        drawn: The figure's values for A and B on the same resamples, or None (no bootstrap).
        resamples: Number of resamples (0: none).
    """

    a: Evidence
    b: Evidence
    drawn: tuple[Drawn, Drawn] | None = None
    resamples: int = 0


@dataclass(frozen=True)
class PairedTest:
    """The result of a paired test of B against A (JSON: ``to_json``).

    Attributes:
        method: How it was tested (JSON ``test``).
        delta: B - A.
        differs: Whether B differs from A at 95%.
        interval: 95% interval of B - A (bootstrap), or None.
        p_value: Two-sided p-value, or None.
        fixed: Samples wrong in A and right in B (McNemar), or None.
        broken: Samples right in A and wrong in B (McNemar), or None.
    """

    method: str
    delta: float
    differs: bool
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    fixed: int | None = None
    broken: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready test; fields that do not apply are left out."""
        out: dict[str, Any] = {"test": self.method}
        out.update({k: v for k, v in (("fixed", self.fixed), ("broken", self.broken), ("p_value", self.p_value))
                    if v is not None})
        out["delta"] = self.delta
        if self.interval is not None:
            out["interval"] = list(self.interval)
        out["differs"] = self.differs
        return out

    def judgement(self) -> str:
        """``no difference shown at 95%`` or ``B is better/worse at 95%``."""
        if not self.differs:
            return "no difference shown at 95%"
        return f"B is {'better' if self.delta > 0 else 'worse'} at 95%"


class Figure:
    """One figure (or family of figures) of the evaluation: see the module docstring.

    Class attributes:
        name: The registered name (set by :func:`evaluate.figures.register_figure`); the
            figure's key in ``metrics.json``.
        label: How the reports name it (``balanced accuracy``).
        order: Position in every output, lower first.
        definition: What it is, for the report's Definitions (one or two sentences).
        interval_method: How its interval is made, for the reports (``bootstrap``).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    order: ClassVar[int] = 100
    definition: ClassVar[str] = ""
    interval_method: ClassVar[str] = "bootstrap"

    def compute(self, evidence: Evidence) -> FigureValue:
        """The figure on one model's predictions."""
        raise NotImplementedError(f"{type(self).__name__} must define compute()")

    def resample_rows(self, evidence: Evidence) -> SumRows | None:
        """Sums beyond the confusion counts that :meth:`resampled` needs (None: the confusion is enough)."""
        return None

    def resampled(self, drawn: DrawnSums) -> Drawn | None:
        """The figure on a chunk of resamples; a figure that defines this gets intervals and a paired test."""
        return None

    @property
    def bootstrapped(self) -> bool:
        """Whether the figure is recomputed on bootstrap resamples."""
        return type(self).resampled is not Figure.resampled

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """Add the figure's keys to ``metrics.json``."""

    def write_files(self, folder: Path, value: FigureValue) -> list[str]:
        """Write files of the figure's own into the evaluation folder; returns their names."""
        return []

    def summary(self, value: FigureValue) -> list[Line]:
        """Lines of the reports' summary (single numbers)."""
        return []

    def columns(self, value: FigureValue) -> list[Column]:
        """Columns of the per-class and averages tables."""
        return []

    def section(self, value: FigureValue) -> Section | None:
        """A block of its own in the reports, after the tables."""
        return None

    def headline(self, value: FigureValue, evidence: Evidence) -> str | None:
        """A sentence of the reports' opening line, or None."""
        return None

    def deltas(self, a: FigureValue, b: FigureValue) -> list[Delta]:
        """Rows of ``evaluate compare``'s metric table."""
        return []

    def class_deltas(self, a: FigureValue, b: FigureValue) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Per-class values of A and B for ``evaluate compare``: ``(key, (K,), (K,))``."""
        return []

    @property
    def verdict_key(self) -> str:
        """The paired test's key in ``compare.json``'s ``verdict``."""
        return self.name

    @property
    def verdict_name(self) -> str:
        """How the verdict names the figure."""
        return self.label[:1].upper() + self.label[1:]

    def paired_test(self, a: FigureValue, b: FigureValue, pair: Pair) -> PairedTest | None:
        """Does B differ from A? By default the paired bootstrap of :meth:`resampled` (None without it)."""
        if pair.drawn is None or a.value is None or b.value is None:
            return None
        drawn_a, drawn_b = pair.drawn
        low, high = map(float, percentile_interval(drawn_b.value - drawn_a.value))
        return PairedTest(PAIRED_BOOTSTRAP, b.value - a.value, bool(low > 0 or high < 0), interval=(low, high))

    def verdict_sentence(self, test: PairedTest, resamples: int) -> str:
        """The verdict's sentence about this figure."""
        low, high = test.interval or (math.nan, math.nan)
        return (f"{self.verdict_name}: B - A = {test.delta:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] (paired "
                f"bootstrap, {resamples} resamples): {test.judgement()}.")


def spoken_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + (items[-1] if items else "")


def interval_text(bounds: tuple[float, float] | list[float] | np.ndarray | None) -> str:
    """`` [low, high]`` for a 95% interval (empty when there is none, or it is NaN)."""
    if bounds is None or len(bounds) != 2 or math.isnan(bounds[0]):
        return ""
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"


__all__ = ["AVERAGE_KINDS", "Averages", "Column", "Delta", "Drawn", "DrawnSums", "Evidence", "Figure",
           "FigureValue", "Line", "MetricsDocument", "Pair", "PairedTest", "ScoringOptions", "Section", "SumRows",
           "interval_text", "spoken_list"]

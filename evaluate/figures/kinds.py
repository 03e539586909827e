"""The two common kinds of figure, with every output hook filled in.

- :class:`ScalarFigure`: one number (accuracy, balanced accuracy). ``metrics.json``
  gets ``<name>`` and, when it has an interval, ``<name>_interval`` ([low, high]); the
  reports a summary line ``<label>: value [low, high] (95%, <method>)``; ``compare`` a
  row ``<name>`` and, when the figure is bootstrapped, a paired-bootstrap verdict under
  ``<name>``.
- :class:`PerClassFigure`: one-vs-rest, a number per class (precision, recall, F1, AP).
  ``metrics.json`` gets ``<name>`` in every ``per_class`` row and in ``macro``,
  ``macro_all_classes``, ``weighted`` and ``micro``; with a bootstrap, ``<name>_interval``
  per class (null for a class without samples) and in ``macro``. The reports give it a
  column in the per-class and averages tables; ``compare`` rows ``macro_<name>``,
  ``weighted_<name>``, ``micro_<name>``, the per-class values, and when bootstrapped a
  paired-bootstrap verdict of the macro average under ``macro_<name>``.

Averages of a per-class figure: ``macro`` is the unweighted mean over the classes with
test samples, ``macro_all_classes`` over every class (those without samples count as
their per-class value, 0 for the figures here), ``weighted`` is weighted by support, and
``micro`` is the figure's own pooled value.
"""

from __future__ import annotations

import math

import numpy as np

from common.scores import macro_average
from evaluate.figures.base import (
    AVERAGE_KINDS,
    Averages,
    Column,
    Delta,
    Figure,
    FigureValue,
    Line,
    MetricsDocument,
    interval_text,
)


class ScalarFigure(Figure):
    """A figure that is one number; subclasses define ``compute`` (and ``resampled`` for an interval)."""

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """``<name>`` and, with an interval, ``<name>_interval``."""
        document.top[self.name] = value.value
        if value.interval is not None:
            document.top[f"{self.name}_interval"] = list(value.interval)

    def summary(self, value: FigureValue) -> list[Line]:
        """``<label>: 0.1234 [low, high]`` and the interval's method."""
        note = f"(95%, {self.interval_method})" if value.interval is not None else ""
        return [Line(self.label, f"{value.value:.4f}{interval_text(value.interval)}", note)]

    def deltas(self, a: FigureValue, b: FigureValue) -> list[Delta]:
        """One row, ``<name>``."""
        return [Delta(self.name, a.value, b.value)]


class PerClassFigure(Figure):
    """A one-vs-rest figure with a value per class; subclasses define ``compute`` with :func:`per_class_value`."""

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """``<name>`` per class and per average, and the intervals when there are any."""
        for kind, average in value.averages.items():
            document.averages[kind][self.name] = average
        if value.interval is not None:
            document.averages["macro"][f"{self.name}_interval"] = list(value.interval)
        for index, row in enumerate(document.per_class):
            row[self.name] = float(value.per_class[index])
            if value.per_class_interval is not None:
                bounds = value.per_class_interval[index]
                row[f"{self.name}_interval"] = None if math.isnan(bounds[0]) else list(map(float, bounds))

    def columns(self, value: FigureValue) -> list[Column]:
        """One column; the macro cell carries the interval."""
        intervals = value.per_class_interval
        cells = [f"{v:.4f}{interval_text(None if intervals is None else intervals[c])}"
                 for c, v in enumerate(value.per_class)]
        averages = tuple(f"{average:.4f}{interval_text(value.interval) if kind == 'macro' else ''}"
                         for kind, average in value.averages.items())
        return [Column(f"{self.label} [95%]" if self.bootstrapped else self.label, cells, averages)]

    def deltas(self, a: FigureValue, b: FigureValue) -> list[Delta]:
        """``macro_<name>``, ``weighted_<name>``, ``micro_<name>``."""
        return [Delta(f"{kind}_{self.name}", getattr(a.averages, kind), getattr(b.averages, kind))
                for kind in ("macro", "weighted", "micro")]

    def class_deltas(self, a: FigureValue, b: FigureValue) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """The per-class values under ``<name>``."""
        return [(self.name, a.per_class, b.per_class)]

    @property
    def verdict_key(self) -> str:
        """``macro_<name>``: the paired test is of the macro average."""
        return f"macro_{self.name}"

    @property
    def verdict_name(self) -> str:
        """``Macro <label>``."""
        return f"Macro {self.label}"


def per_class_value(per_class: np.ndarray, support: np.ndarray, micro: float) -> FigureValue:
    """A per-class figure's value: its per-class values and their averages (value = macro).

    Args:
        per_class: The figure per class ``(K,)``.
        support: True samples per class ``(K,)``.
        micro: The figure pooled over all samples.
    """
    per_class = np.asarray(per_class, dtype=np.float64)
    support = np.asarray(support, dtype=np.float64)
    macro = macro_average(per_class, support)
    averages = Averages(macro=macro, macro_all_classes=float(per_class.mean()),
                        weighted=float(support @ per_class / support.sum()), micro=float(micro))
    return FigureValue(macro, per_class=per_class, averages=averages)


__all__ = ["AVERAGE_KINDS", "PerClassFigure", "ScalarFigure", "per_class_value"]

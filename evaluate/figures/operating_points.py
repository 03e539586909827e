"""Operating points: per class, the thresholds that reach target precisions and recalls.

For a target precision, the lowest threshold whose precision reaches it (so the most
recall at that precision); for a target recall, the highest threshold whose recall
reaches it (so the most precision); ``null`` when unreachable, and no operating points
for a class without samples (:func:`evaluate.metrics.operating_points`). The targets
are ``--precision-targets`` and ``--recall-targets``.
"""

from __future__ import annotations

from evaluate.figures import register_figure
from evaluate.figures.base import Column, Evidence, Figure, FigureValue, MetricsDocument
from evaluate.metrics import operating_points


@register_figure("operating_points")
class OperatingPoints(Figure):
    """Thresholds per class for the target precisions and recalls."""

    label = "operating points"
    order = 24
    definition = ("Operating points: the lowest threshold reaching a target precision, the highest reaching a target "
                  "recall.")

    def compute(self, evidence: Evidence) -> FigureValue:
        """``detail``: per class ``{"precision": {target: point}, "recall": {...}}``, or None without samples."""
        options, support = evidence.options, evidence.support
        return FigureValue(None, detail=[
            operating_points(evidence.curves[name], list(options.precision_targets), list(options.recall_targets))
            if support[c] else None for c, name in enumerate(evidence.class_names)])

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """``operating_points`` in every ``per_class`` row."""
        for row, points in zip(document.per_class, value.detail):
            row["operating_points"] = points

    def columns(self, value: FigureValue) -> list[Column]:
        """``threshold @ precision 0.95`` ... per target (``unreachable`` where none reaches it)."""
        example = next((points for points in value.detail if points), None)
        if example is None:
            return []
        columns = []
        for kind in ("precision", "recall"):
            for key in example[kind]:
                cells = ["-" if points is None else "unreachable" if points[kind][key] is None
                         else f"{points[kind][key]['threshold']:.3f}" for points in value.detail]
                columns.append(Column(f"threshold @ {kind} {key}", cells))
        return columns

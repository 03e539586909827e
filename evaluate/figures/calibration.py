"""Calibration as a figure: ECE, MCE, NLL and the Brier score, and the reliability diagram.

The definitions are in :mod:`evaluate.calibration`. ``metrics.json`` gets ``calibration``
(``bins, ece, mce, nll, brier, mean_confidence, binning``); the reports a section with
the figures, ``reliability.png`` and ``reliability.csv``. ``compare`` does not show it.
"""

from __future__ import annotations

from pathlib import Path

from common.html import figure, link, table
from evaluate.calibration import RELIABILITY, Calibration, calibrate, write_reliability
from evaluate.figures import register_figure
from evaluate.figures.base import Evidence, Figure, FigureValue, MetricsDocument, Section


@register_figure("calibration")
class CalibrationFigure(Figure):
    """Calibration of the predicted class's probability (``detail``: :class:`evaluate.calibration.Calibration`)."""

    label = "calibration"
    order = 40
    definition = ("Calibration: 15 equal-width bins of the predicted class's probability; ECE = sum of "
                  "(n_bin/N)|accuracy - confidence|, MCE the largest bin gap; NLL = mean -ln p(true class); Brier = "
                  "mean sum over classes of (p - onehot)^2.")

    def compute(self, evidence: Evidence) -> FigureValue:
        """The calibration figures; ``value`` is the ECE."""
        calibration = calibrate(evidence.labels, evidence.probabilities)
        return FigureValue(calibration.ece, detail=calibration)

    def write_json(self, value: FigureValue, document: MetricsDocument) -> None:
        """``calibration``: the summary of :class:`evaluate.calibration.Calibration`."""
        document.top["calibration"] = value.detail.summary()

    def write_files(self, folder: Path, value: FigureValue) -> list[str]:
        """``reliability.png`` and ``reliability.csv``."""
        return write_reliability(folder, value.detail)

    def section(self, value: FigureValue) -> Section:
        """One line in result.txt; a table, the diagram and its data in report.html."""
        c: Calibration = value.detail
        text = (f"calibration ({len(c.counts)} bins): ECE {c.ece:.4f}, MCE {c.mce:.4f}, NLL {c.nll:.4f}, "
                f"Brier {c.brier:.4f}")
        rows = [[name, f"{number:.4f}"] for name, number in (
            ("ECE (expected calibration error)", c.ece), ("MCE (maximum calibration error)", c.mce),
            ("NLL (nats per image)", c.nll), ("Brier score", c.brier), ("mean confidence", c.mean_confidence))]
        html = "".join([
            "<h2>Calibration</h2>", table(["figure", "value"], rows),
            figure(f"{RELIABILITY}.png", "reliability diagram"),
            f"<p>data: {link(f'{RELIABILITY}.csv', f'{RELIABILITY}.csv')} ({len(c.counts)} equal-width bins of the "
            "predicted class's probability)</p>",
        ])
        return Section([text], html)

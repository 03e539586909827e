"""Scores: every registered figure on one model's predictions, as one typed object.

:func:`score` gathers the evidence (predictions, confusion counts, precision-recall
curves) once and asks each figure of :mod:`evaluate.figures` for its value;
:func:`with_intervals` adds the 95% bootstrap intervals of the bootstrapped figures, all
from the same resamples (:func:`draws`, which ``evaluate compare`` also uses for its
paired tests); :func:`metrics_json` is the content of ``metrics.json``. The reports and
``compare`` read a :class:`Scores`, never the JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from evaluate.figures import build_figures
from evaluate.figures.base import Drawn, DrawnSums, Evidence, Figure, FigureValue, MetricsDocument, ScoringOptions
from evaluate.metrics import RECALL_GRID, TIE_RULE, Curve, class_curves, interpolated_precision, micro_curve
from evaluate.uncertainty import LEVEL, count_dtype, percentile_interval, resampled_sums

LARGEST_CONFUSIONS = 10
"""Confusion pairs listed in ``metrics.json`` (the most frequent first)."""

BOOTSTRAP_METHOD = "percentile; each resample draws the images with replacement (numpy default_rng(seed))"


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals were made: ``resamples`` resamples of the images, seeded with ``seed``."""

    resamples: int
    seed: int


@dataclass(frozen=True)
class Confusion:
    """A (true, predicted) pair of different classes, with its count and the true class's support."""

    true: str
    predicted: str
    count: int
    support: int


@dataclass(frozen=True)
class Scores:
    """Every figure of one model on one labelled set.

    Attributes:
        evidence: What the figures were computed from.
        figures: The figures, in output order.
        values: Each figure's value, by figure name.
        bootstrap: How the intervals were made, or None (no bootstrap intervals).
    """

    evidence: Evidence
    figures: tuple[Figure, ...]
    values: dict[str, FigureValue]
    bootstrap: Bootstrap | None = None

    @property
    def samples(self) -> int:
        """Number of samples."""
        return len(self.evidence.labels)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names, index = label."""
        return self.evidence.class_names

    @property
    def confusion(self) -> np.ndarray:
        """Counts ``(K, K)``, rows = true class, columns = predicted class."""
        return self.evidence.confusion

    @property
    def curves(self) -> dict[str, Curve]:
        """PR curves per class name, plus ``micro`` and ``macro``."""
        return self.evidence.curves

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class per sample ``(N,)``."""
        return self.evidence.predicted

    @property
    def classes_without_samples(self) -> list[str]:
        """Classes with no true sample (left out of macro averages)."""
        return [name for name, present in zip(self.class_names, self.evidence.present) if not present]

    def largest_confusions(self, limit: int = LARGEST_CONFUSIONS) -> list[Confusion]:
        """The most frequent off-diagonal pairs, most frequent first (ties: lower true, then predicted index)."""
        off = self.confusion.astype(np.int64)
        np.fill_diagonal(off, 0)
        flat = np.argsort(-off, axis=None, kind="stable")[:limit]  # (K, K) -> (K*K,) most frequent first
        support = self.evidence.support
        return [Confusion(self.class_names[t], self.class_names[p], int(off[t, p]), int(support[t]))
                for t, p in zip(*np.unravel_index(flat, off.shape)) if off[t, p]]

    def get(self, figure: str | type[Figure]) -> FigureValue:
        """One figure's value, by name or by its class.

        Raises:
            KeyError: When the figure was not computed, naming those that were.
        """
        name = figure if isinstance(figure, str) else figure.name
        if name not in self.values:
            raise KeyError(f"figure {name!r} was not computed; computed: {list(self.values)}")
        return self.values[name]

    def items(self) -> Iterator[tuple[Figure, FigureValue]]:
        """``(figure, value)`` in output order."""
        return ((figure, self.values[figure.name]) for figure in self.figures)


def gather_evidence(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                    options: ScoringOptions = ScoringOptions()) -> Evidence:
    """Predictions, confusion counts and PR curves (every class, micro, macro), computed once for all figures."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities)
    classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    # (K*K,) counts of (true, predicted) pairs -> (K, K), rows = true class
    confusion = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    curves = dict(zip(class_names, class_curves(labels, probabilities)))
    curves["micro"] = micro_curve(labels, probabilities)
    present = [name for name, s in zip(class_names, confusion.sum(axis=1)) if s]
    macro_precision = np.mean([interpolated_precision(curves[name]) for name in present or class_names], axis=0)
    curves["macro"] = Curve(precision=macro_precision[::-1], recall=RECALL_GRID[::-1], thresholds=np.empty(0))
    return Evidence(labels, probabilities, tuple(class_names), predicted, confusion, curves, options)


def score(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
          precision_targets: tuple[float, ...] = (0.95, 0.99), recall_targets: tuple[float, ...] = (0.95,),
          top_k: tuple[int, ...] = (1, 2, 3, 5), figures: Sequence[str] | None = None) -> Scores:
    """The point value of every figure (intervals by bootstrap: :func:`with_intervals`).

    Args:
        labels: True class indices ``(N,)``.
        probabilities: Class scores ``(N, K)``.
        class_names: ``K`` names, index = label.
        precision_targets: Precisions to find operating points for.
        recall_targets: Recalls to find operating points for.
        top_k: Values of k for top-k accuracy (those above K are left out).
        figures: Names of the figures to compute (default: every registered figure).
    """
    options = ScoringOptions(tuple(precision_targets), tuple(recall_targets), tuple(top_k))
    evidence = gather_evidence(labels, probabilities, class_names, options)
    chosen = build_figures(figures)
    return Scores(evidence, tuple(chosen), {figure.name: figure.compute(evidence) for figure in chosen})


def draws(evidences: Sequence[Evidence], figures: Sequence[Figure], resamples: int, seed: int
          ) -> list[dict[str, Drawn]]:
    """Every bootstrapped figure of each model, on the same bootstrap resamples of the images.

    Args:
        evidences: One model's evidence each, all of the same samples and labels.
        figures: The figures (those without ``resampled`` are skipped).
        resamples: Number of resamples B (at least 1).
        seed: Seed of the resampling.

    Returns:
        Per model, figure name -> its values on the B resamples.
    """
    chosen = [figure for figure in figures if figure.bootstrapped]
    layouts = [_layout(evidence, chosen) for evidence in evidences]
    chunks: list[dict[str, list[Drawn]]] = [{figure.name: [] for figure in chosen} for _ in evidences]
    for sums in resampled_sums([matrix for matrix, _ in layouts], resamples, seed):
        for evidence, (_, blocks), block, parts in zip(evidences, layouts, sums, chunks):
            classes = len(evidence.class_names)
            cells = block[:classes * classes].astype(np.float64)
            confusion = cells.reshape(classes, classes, -1)  # (K*K, b) -> (K, K, b)
            for figure, (rows, layout) in zip(chosen, blocks):
                drawn = DrawnSums(confusion, evidence.present, None if rows is None else block[rows], layout)
                parts[figure.name].append(figure.resampled(drawn))
    return [{name: _joined(parts) for name, parts in per_model.items()} for per_model in chunks]


def with_intervals(scores: Scores, resamples: int, seed: int) -> Scores:
    """The scores with the 95% percentile-bootstrap intervals of every bootstrapped figure (0 resamples: none)."""
    if not resamples:
        return replace(scores, bootstrap=None)
    drawn = draws([scores.evidence], scores.figures, resamples, seed)[0]
    present = scores.evidence.present
    values = {name: _with_interval(value, drawn[name], present) if name in drawn else value
              for name, value in scores.values.items()}
    return replace(scores, values=values, bootstrap=Bootstrap(resamples, seed))


def metrics_json(scores: Scores) -> dict[str, Any]:
    """The content of ``metrics.json``: the core keys, and each figure's own."""
    support = scores.evidence.support
    document = MetricsDocument([{"class": name, "index": c, "support": int(support[c])}
                                for c, name in enumerate(scores.class_names)])
    for figure, value in scores.items():
        figure.write_json(value, document)
    bootstrap = scores.bootstrap
    return {
        "samples": scores.samples, "classes": list(scores.class_names), **document.top, **document.averages,
        "per_class": document.per_class, "classes_without_samples": scores.classes_without_samples,
        "largest_confusions": [asdict(pair) for pair in scores.largest_confusions()],
        "tie_rule": TIE_RULE, "confusion_convention": "rows = true class, columns = predicted class",
        "uncertainty": {"level": LEVEL, "accuracy": "Wilson score interval", "bootstrap": None if bootstrap is None
                        else {"resamples": bootstrap.resamples, "seed": bootstrap.seed, "method": BOOTSTRAP_METHOD}},
    }


def _layout(evidence: Evidence, figures: Sequence[Figure]) -> tuple[Any, list[tuple[slice | None, Any]]]:
    """One model's sum matrix (confusion cells first, then each figure's rows) and where each figure's rows are."""
    from scipy import sparse

    count, classes = evidence.probabilities.shape
    rows, images = [evidence.labels * classes + evidence.predicted], [np.arange(count)]
    blocks, offset = [], classes * classes
    for figure in figures:
        extra = figure.resample_rows(evidence)
        if extra is None:
            blocks.append((None, None))
            continue
        rows.append(offset + extra.rows)
        images.append(extra.images)
        blocks.append((slice(offset, offset + extra.size), extra.layout))
        offset += extra.size
    entries = sum(map(len, rows))
    matrix = sparse.csr_array((np.ones(entries, dtype=count_dtype(count)),
                               (np.concatenate(rows), np.concatenate(images))), shape=(offset, count))
    return matrix, blocks


def _joined(parts: list[Drawn]) -> Drawn:
    per_class = None if parts[0].per_class is None else np.concatenate([p.per_class for p in parts])
    return Drawn(np.concatenate([p.value for p in parts]), per_class)


def _with_interval(value: FigureValue, drawn: Drawn, present: np.ndarray) -> FigureValue:
    low, high = map(float, percentile_interval(drawn.value))
    per_class = None
    if drawn.per_class is not None:
        per_class = percentile_interval(drawn.per_class).T  # (2, K) -> (K, 2)
        per_class[~present] = np.nan  # no interval for a class without samples
    return replace(value, interval=(low, high), per_class_interval=per_class)

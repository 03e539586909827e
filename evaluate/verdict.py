"""Is B really different from A? The tests behind ``evaluate compare``.

On the same samples, each figure of :mod:`evaluate.figures` tests itself
(:meth:`evaluate.figures.base.Figure.paired_test`): accuracy with McNemar's exact test
for top-1 correctness (only the samples that flipped count: ``fixed`` = wrong in A and
right in B, ``broken`` = the other way), and every bootstrapped figure (macro F1, macro
AP, ...) with a paired bootstrap: both models scored on the same resamples of the
images, the 95% percentile interval of B - A. A figure differs at 95% when the p-value
is below 0.05, or the interval excludes 0. See :mod:`evaluate.uncertainty` for the
definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluate.figures.base import Figure, Pair, PairedTest, spoken_list
from evaluate.scoring import Bootstrap, Scores, draws
from evaluate.uncertainty import LEVEL


@dataclass(frozen=True)
class Verdict:
    """The paired tests of B against A.

    Attributes:
        tests: Each figure that has a test, with its result, in figure order.
        untested: The bootstrapped figures left untested (no bootstrap).
        bootstrap: The paired bootstrap's resamples and seed, or None (none made).
    """

    tests: tuple[tuple[Figure, PairedTest], ...]
    untested: tuple[Figure, ...]
    bootstrap: Bootstrap | None

    def to_json(self) -> dict[str, Any]:
        """``compare.json``'s ``verdict``: the level, each test under its figure's key, the bootstrap."""
        out: dict[str, Any] = {"level": LEVEL}
        out.update({figure.verdict_key: test.to_json() for figure, test in self.tests})
        out["bootstrap"] = None if self.bootstrap is None else {"resamples": self.bootstrap.resamples,
                                                                "seed": self.bootstrap.seed}
        return out

    def sentences(self) -> list[str]:
        """Plain sentences: first which figures differ, then each test."""
        differing = [f"{figure.verdict_name} ({'better' if test.delta > 0 else 'worse'})"
                     for figure, test in self.tests if test.differs]
        first = (f"Verdict: B differs from A at 95% on {', '.join(differing)}." if differing
                 else "Verdict: no difference between A and B is shown at 95%.")
        resamples = 0 if self.bootstrap is None else self.bootstrap.resamples
        sentences = [first, *(figure.verdict_sentence(test, resamples) for figure, test in self.tests)]
        if self.untested:
            sentences.append(f"{spoken_list([f.verdict_name for f in self.untested])}: no paired bootstrap "
                             "(--bootstrap 0), so no verdict.")
        return sentences


def verdict(a: Scores, b: Scores, resamples: int, seed: int) -> Verdict:
    """Every figure's paired test of B against A.

    Args:
        a: A's scores.
        b: B's scores: the same figures, samples and labels, in the same order.
        resamples: Paired-bootstrap resamples (0: no bootstrap).
        seed: Seed of the resampling.
    """
    drawn_a, drawn_b = draws([a.evidence, b.evidence], a.figures, resamples, seed) if resamples else ({}, {})
    tests, untested = [], []
    for figure, value in a.items():
        drawn = (drawn_a[figure.name], drawn_b[figure.name]) if figure.name in drawn_a else None
        test = figure.paired_test(value, b.get(figure.name), Pair(a.evidence, b.evidence, drawn, resamples))
        if test is not None:
            tests.append((figure, test))
        elif figure.bootstrapped and not resamples:
            untested.append(figure)
    return Verdict(tuple(tests), tuple(untested), Bootstrap(resamples, seed) if resamples else None)

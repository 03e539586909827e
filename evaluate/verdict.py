"""Is B really different from A? The tests behind ``evaluate compare``.

On the same samples: McNemar's exact test for top-1 correctness (only the samples
that flipped count: ``fixed`` = wrong in A and right in B, ``broken`` = the other
way), and a paired bootstrap for macro F1 and macro AP (both models scored on the
same resamples of the images; the 95% percentile interval of B - A). A figure
differs at 95% when the p-value is below 0.05, or the interval excludes 0. See
:mod:`evaluate.uncertainty` for the definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluate.uncertainty import LEVEL, mcnemar_exact, paired_bootstrap

PAIRED_FIGURES = {"macro_f1": "Macro F1", "macro_ap": "Macro AP"}


def verdict(labels: np.ndarray, probabilities_a: np.ndarray, probabilities_b: np.ndarray,
            deltas: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """The tests of B against A, JSON-ready.

    Args:
        labels: True class indices ``(N,)``.
        probabilities_a: A's class scores ``(N, K)``.
        probabilities_b: B's class scores, same samples in the same order.
        deltas: The metric deltas (``{"accuracy": {"a", "b", "delta"}, "macro_f1": ...}``).
        resamples: Paired-bootstrap resamples (0: no bootstrap).
        seed: Seed of the resampling.
    """
    right_a = probabilities_a.argmax(axis=1) == labels
    right_b = probabilities_b.argmax(axis=1) == labels
    fixed, broken = int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
    p_value = mcnemar_exact(fixed, broken)
    out: dict[str, Any] = {
        "level": LEVEL,
        "accuracy": {"test": "McNemar exact (two-sided binomial test on the discordant samples)",
                     "fixed": fixed, "broken": broken, "p_value": p_value, "delta": deltas["accuracy"]["delta"],
                     "differs": p_value < 1 - LEVEL},
        "bootstrap": {"resamples": resamples, "seed": seed} if resamples else None,
    }
    if resamples:
        paired = paired_bootstrap(labels, probabilities_a, probabilities_b, resamples, seed)
        for key in PAIRED_FIGURES:
            out[key] = {"test": "paired bootstrap (percentile interval of B - A)", "delta": deltas[key]["delta"],
                        **paired[key]}
    return out


def verdict_sentences(result: dict[str, Any]) -> list[str]:
    """Plain sentences: first which figures differ, then each test."""
    accuracy = result["accuracy"]
    figures = [("accuracy", accuracy), *((PAIRED_FIGURES[k], result[k]) for k in PAIRED_FIGURES if k in result)]
    differing = [f"{name} ({'better' if item['delta'] > 0 else 'worse'})" for name, item in figures
                 if item["differs"]]
    first = (f"Verdict: B differs from A at 95% on {', '.join(differing)}." if differing
             else "Verdict: no difference between A and B is shown at 95%.")
    sentences = [first, (
        f"Accuracy: B - A = {accuracy['delta'] * 100:+.2f} points; McNemar exact p = {accuracy['p_value']:.4g} on "
        f"{accuracy['fixed'] + accuracy['broken']} flipped images ({accuracy['fixed']} fixed, {accuracy['broken']} "
        f"broken): {_judgement(accuracy)}.")]
    for key, name in PAIRED_FIGURES.items():
        if key not in result:
            continue
        item = result[key]
        low, high = item["interval"]
        sentences.append(f"{name}: B - A = {item['delta']:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] (paired "
                         f"bootstrap, {result['bootstrap']['resamples']} resamples): {_judgement(item)}.")
    if result["bootstrap"] is None:
        sentences.append("Macro F1 and AP: no paired bootstrap (--bootstrap 0), so no verdict.")
    return sentences


def _judgement(item: dict[str, Any]) -> str:
    if not item["differs"]:
        return "no difference shown at 95%"
    return f"B is {'better' if item['delta'] > 0 else 'worse'} at 95%"

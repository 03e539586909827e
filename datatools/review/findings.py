"""What a review finds, as :class:`datatools.review.decisions.Finding` rows: label issues, duplicates, odd files.

- **Label issues**: cleanlab's ``find_label_issues`` on the pooled out-of-sample
  probabilities (confident learning: a label is suspect when the probabilities of
  other images of its class, estimated per class pair, say it is likely another
  class), with its label quality score (``get_label_quality_scores``, self-confidence:
  the probability of the given label) and the suggested label (the most probable class).
- **Duplicates**: every exact or near-duplicate pair (:mod:`datatools.review.duplicates`);
  a pair across lists is a leak (reported first), and the row's action applies to the
  copy in the less protected list (train before val before test), so removing it keeps
  the test list as it is.
- **Unreadable and odd files**: files the stages cannot decode, and files whose
  header stands out (:func:`datatools.profile.odd_files`).
"""

from __future__ import annotations

import warnings

import numpy as np

from datatools.review.decisions import Finding
from datatools.review.duplicates import Fingerprints, Pair
from datatools.review.sources import OutOfSample

PROTECTED = ("test", "val", "train")
"""Lists in the order an image's copy is kept when two lists hold the same picture (the first is kept)."""


def primary_split(splits: list[str]) -> str:
    """The list an image is reported under: test, then val, then train, then others by name (``dev`` last)."""
    def order(name: str) -> tuple[int, str]:
        return (PROTECTED.index(name) if name in PROTECTED else len(PROTECTED) + (name == "dev"), name)

    return min(splits, key=order)


def protection(split: str) -> int:
    """How protected a list is (higher: keep its copy of a duplicate): test 3, val 2, train 1, others 0."""
    return len(PROTECTED) - PROTECTED.index(split) if split in PROTECTED else 0


def label_issues(found: OutOfSample, class_names: tuple[str, ...], notes: list[str]) -> list[Finding]:
    """cleanlab's label issues among images with out-of-sample probabilities.

    Args:
        found: The pooled probabilities.
        class_names: The data set's classes.
        notes: Receives cleanlab's warnings (e.g. a class with too few images to judge).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if len(found.paths) < 2:
        return []
    probabilities = np.asarray(found.probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 rows sum to 1 within 1e-6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        issues = find_label_issues(found.labels, probabilities, return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(found.labels, probabilities)
    notes += sorted({f"cleanlab: {w.message}" for w in caught})
    suggested = probabilities.argmax(axis=1)
    findings = []
    for index in issues:
        given, best = int(found.labels[index]), int(suggested[index])
        detail = (f"labelled {class_names[given]!r} but the out-of-sample probabilities prefer "
                  f"{class_names[best]!r} ({probabilities[index, best]:.3f}; {probabilities[index, given]:.3f} for "
                  f"the given label)")
        findings.append(Finding("label_issue", 1.0 - float(quality[index]), found.splits[index], found.paths[index],
                                given, detail, suggested_label=best, label_quality=float(quality[index])))
    return findings


def duplicate_findings(prints: Fingerprints, pairs: list[Pair], splits: dict[str, list[str]],
                       labels: dict[str, int | None]) -> list[Finding]:
    """One finding per image that has a copy in a more protected place, its most severe pair only.

    Args:
        prints: The fingerprints the pairs index.
        pairs: The duplicate pairs.
        splits: ``path -> the lists holding it``.
        labels: ``path -> its label`` (None when its lists disagree).
    """
    chosen: dict[str, Finding] = {}
    for pair in pairs:
        a, b = prints.paths[pair.first], prints.paths[pair.second]
        split_a, split_b = primary_split(splits[a]), primary_split(splits[b])
        if (protection(split_a), b) > (protection(split_b), a):  # act on the less protected copy (or the later path)
            a, b, split_a, split_b = b, a, split_b, split_a
        kind = "cross_split_duplicate" if split_a != split_b else "duplicate"
        what = "the same pixels as" if pair.exact else f"a near-duplicate (similarity {pair.similarity:.4f}) of"
        where = f"in {split_b}" if kind == "cross_split_duplicate" else "in the same list"
        finding = Finding(kind, pair.similarity, split_a, a, labels.get(a), f"{what} {b} {where}",
                          duplicate_of=b, duplicate_split=split_b, distance=pair.distance, similarity=pair.similarity)
        if a not in chosen or finding.rank() < chosen[a].rank():
            chosen[a] = finding
    return list(chosen.values())


def file_findings(unreadable: dict[str, str], odd: dict[str, str], splits: dict[str, list[str]],
                  labels: dict[str, int | None]) -> list[Finding]:
    """Unreadable files (the stages stop at them) and odd ones."""
    findings = [Finding("unreadable", 1.0, primary_split(splits[path]), path, labels.get(path),
                        f"cannot be decoded ({reason}); training and evaluation stop at it") for path, reason in
                unreadable.items()]
    findings += [Finding("odd_file", 0.5, primary_split(splits[path]), path, labels.get(path), reason)
                 for path, reason in odd.items() if path not in unreadable]
    return findings

"""The summary's counts and selections equal a plain Python computation, however the rows arrive."""

from __future__ import annotations

import numpy as np
import pytest

from predict.rows import Row
from predict.summary import Summariser

NAMES = ["a", "b", "c", "d"]


def data(count: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(4) * 0.5, count).astype(np.float32)
    probabilities[::7] = probabilities[0]  # ties of every kind
    labels = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    values = np.take_along_axis(probabilities, labels, axis=1)
    decided = values[:, 0] >= np.float32(0.6)
    return [f"/p/{i:05d}.png" for i in range(count)], labels, values, decided


def expected(paths, labels, values, decided, gallery: int, limit: int):
    """The selections by sorting every row in Python: key high to low, then the earlier row."""
    rows = list(range(len(paths)))
    best = {c: sorted((i for i in rows if decided[i] and labels[i, 0] == c), key=lambda i: (-values[i, 0], i))
            for c in range(4)}
    low = {c: sorted((i for i in rows if decided[i] and labels[i, 0] == c), key=lambda i: (values[i, 0], i))
           for c in range(4)}
    unsure = sorted((i for i in rows if not decided[i]), key=lambda i: (-values[i, 0], i))
    margins = values[:, 0] - values[:, 1]  # float32
    uncertain = sorted(rows, key=lambda i: (margins[i], i))
    return ({c: [paths[i] for i in best[c][:gallery]] for c in best if best[c]},
            {c: [paths[i] for i in low[c][:gallery]] for c in low if low[c]},
            [paths[i] for i in unsure[:gallery]], [paths[i] for i in (uncertain[:limit] if limit else uncertain)])


@pytest.mark.parametrize(("count", "batch", "limit"), [(300, 1, 5), (300, 7, 0), (300, 64, 17), (300, 1000, 5),
                                                      (6000, 64, 17), (6000, 256, 0), (6000, 33, 1500)])
def test_selections_equal_sorting_everything_whatever_the_batches(count, batch, limit):
    """Thousands of rows: full groups drop candidates on arrival and rank in bulk; the selections stay exact."""
    paths, labels, values, decided = data(count, 0)
    summariser = Summariser(NAMES, limit, gallery=4)
    for start in range(0, len(paths), batch):
        part = slice(start, start + batch)
        summariser.add(paths[part], labels[part], values[part], decided[part])
    summary = summariser.result([("/p/x.png", "broken")])
    best, low, unsure, uncertain = expected(paths, labels, values, decided, 4, limit)
    assert {c: [r.path for r in rows] for c, rows in summary.most_confident.items()} == best
    assert {c: [r.path for r in rows] for c, rows in summary.least_confident.items()} == low
    assert [r.path for r in summary.abstained_examples] == unsure
    assert [r.path for r in summary.uncertain] == uncertain
    assert summary.predicted == count and summary.decided_total == int(decided.sum())
    assert summary.decided == {n: int((decided & (labels[:, 0] == c)).sum()) for c, n in enumerate(NAMES)}
    assert summary.abstained_total == count - int(decided.sum()) and summary.unreadable == [("/p/x.png", "broken")]


def test_rows_read_back_give_the_same_summary():
    paths, labels, values, decided = data(200, 1)
    direct = Summariser(NAMES, 10)
    direct.add(paths, labels, values, decided)
    rows = [Row(p, NAMES[l[0]] if d else "abstain", int(l[0]) if d else None, tuple(NAMES[c] for c in l),
                tuple(float("%.9g" % v) for v in vs)) for p, l, vs, d in zip(paths, labels, values, decided)]
    read = Summariser(NAMES, 10)
    read.add_rows(iter(rows))
    assert read.result([]) == direct.result([])

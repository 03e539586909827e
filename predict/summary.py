"""What a prediction holds, gathered batch by batch with memory bounded by what is shown.

Counts per decided class and of abstentions (by top-1 class), the images each report
gallery shows (per decided class the most and the least confident, the abstained
images nearest to being decided), and the most uncertain images (smallest top-1
margin) for ``to_label.txt``. A fresh run feeds its batches as they are predicted
(:meth:`Summariser.add`); a resumed run and a merge read their rows back
(:meth:`Summariser.add_rows`). Both see the same float32 probabilities (a row's
9-digit text parses back to the very float32 it was written from), and ties are broken
by the rows' order (the paths' order), so every selection is the same however the
rows were produced. Each batch is selected with numpy (a sort per batch of the
candidates and those kept), so summarising costs little beside the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from predict.decisions import ABSTAIN
from predict.rows import Row

GALLERY = 6
"""Images per gallery (per class: the most and the least confident; the abstained)."""

CHUNK = 4096
"""Rows read back per batch of :meth:`Summariser.add_rows`."""


@dataclass
class Summary:
    """A finished prediction in figures and selections.

    Attributes:
        class_names: The model's classes.
        predicted: Images with a row.
        decided: Per class name, images decided as it.
        abstained: Per class name, images whose top-1 class it was but that abstained.
        unreadable: ``(path, reason)`` per image that could not be decoded.
        most_confident: Per class index, its decided images with the highest probability.
        least_confident: Per class index, its decided images with the lowest probability.
        abstained_examples: Abstained images, the most probable first.
        uncertain: The images with the smallest top-1 margin, most uncertain first.
    """

    class_names: list[str]
    predicted: int = 0
    decided: dict[str, int] = field(default_factory=dict)
    abstained: dict[str, int] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    most_confident: dict[int, list[Row]] = field(default_factory=dict)
    least_confident: dict[int, list[Row]] = field(default_factory=dict)
    abstained_examples: list[Row] = field(default_factory=list)
    uncertain: list[Row] = field(default_factory=list)

    @property
    def decided_total(self) -> int:
        """Images decided."""
        return sum(self.decided.values())

    @property
    def abstained_total(self) -> int:
        """Images abstained."""
        return sum(self.abstained.values())

    def to_record(self) -> dict[str, Any]:
        """The record's ``summary``."""
        return {"predicted": self.predicted, "decided": self.decided, "abstained": self.abstained_total,
                "abstained_by_top1_class": self.abstained, "unreadable": len(self.unreadable)}

    def sentence(self) -> str:
        """One line for people: images, decided per class, abstained, unreadable."""
        per_class = ", ".join(f"{name} {n:,}" for name, n in self.decided.items() if n)
        text = (f"{self.predicted:,} image(s) predicted: {self.decided_total:,} decided"
                f"{f' ({per_class})' if per_class else ''}, {self.abstained_total:,} abstained")
        if self.unreadable:
            text += f"; {len(self.unreadable):,} unreadable (listed in unreadable.csv)"
        return text


class _Kept:
    """The ``size`` best images per group (a class, or one group) seen so far: largest key first, then earliest.

    Args:
        size: Images kept per group (0: all).
    """

    def __init__(self, size: int):
        self.size = size
        self.chunks: list[dict[str, np.ndarray]] = []  # the ranked kept candidates first, then offered ones
        self.pending = 0  # candidates offered since the last ranking
        self.floor_groups = np.zeros(0, dtype=np.int64)  # at the last ranking: the full groups, sorted ...
        self.floor_keys = np.zeros(0, dtype=np.float32)  # ... and the key of each one's last kept image

    def offer(self, group: np.ndarray, key: np.ndarray, order: np.ndarray, payload: dict[str, np.ndarray],
              rows: np.ndarray) -> None:
        """Offer candidates: per candidate its group, key (float32), order and row of ``payload`` (the batch's
        row fields, one array per field).

        A candidate that cannot beat its group's last kept image at the last ranking is
        dropped on arrival (floors only rise, so none is dropped wrongly) before its fields
        are copied, and the rest are ranked in bulk: a batch costs little once the groups
        are full. With ``size`` 0 (keep all) ranking waits until the rows are asked for.
        """
        if len(self.floor_groups):
            at = np.minimum(np.searchsorted(self.floor_groups, group), len(self.floor_groups) - 1)
            floor = np.where(self.floor_groups[at] == group, self.floor_keys[at], -np.inf)
            beats = key > floor  # an equal key: the kept image came first and stays
            group, key, order, rows = group[beats], key[beats], order[beats], rows[beats]
        if len(group):
            self.chunks.append({"group": group, "key": key, "order": order,
                                **{name: values[rows] for name, values in payload.items()}})
            self.pending += len(group)
        if self.size and self.pending > 4 * self.size + 1024:
            self._rank()

    @property
    def arrays(self) -> dict[str, np.ndarray] | None:
        """The kept candidates, ranked: by group, key high to low, then order (None: none offered)."""
        self._rank()
        return self.chunks[0] if self.chunks else None

    def _rank(self) -> None:
        if not self.pending:
            return
        offered = {name: np.concatenate([chunk[name] for chunk in self.chunks]) for name in self.chunks[0]}
        ranked = np.lexsort((offered["order"], -offered["key"], offered["group"]))  # group, key high to low, order
        groups = offered["group"][ranked]
        starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
        counts = np.diff(np.r_[starts, len(groups)])
        rank = np.arange(len(groups)) - np.repeat(starts, counts)
        kept = ranked[rank < self.size] if self.size else ranked
        self.chunks, self.pending = [{name: values[kept] for name, values in offered.items()}], 0
        if self.size:
            full = counts >= self.size
            self.floor_groups = groups[starts[full]]
            self.floor_keys = offered["key"][ranked[starts[full] + self.size - 1]]

    def rows(self, class_names: list[str], group: int | None = None) -> list[Row]:
        """The kept rows of a group (None: all), best first."""
        if self.arrays is None:
            return []
        a = self.arrays
        chosen = np.flatnonzero(a["group"] == group) if group is not None else np.arange(len(a["group"]))
        return [Row(str(a["path"][i]), class_names[a["labels"][i, 0]] if a["decided"][i] else ABSTAIN,
                    int(a["labels"][i, 0]) if a["decided"][i] else None,
                    tuple(class_names[c] for c in a["labels"][i]), tuple(float(v) for v in a["values"][i]))
                for i in chosen]

    def groups(self) -> list[int]:
        """The groups with kept rows."""
        return [] if self.arrays is None else sorted(set(self.arrays["group"].tolist()))


class Summariser:
    """Counts and selections of a prediction, batch by batch.

    Args:
        class_names: The model's classes.
        rank_limit: Images to rank by uncertainty (0: all; None: no ranking).
        gallery: Images per gallery.
    """

    def __init__(self, class_names: Sequence[str], rank_limit: int | None, gallery: int = GALLERY):
        self.class_names, self.rank_limit = list(class_names), rank_limit
        self.counted = 0
        self.decided = np.zeros(len(class_names), dtype=np.int64)
        self.abstained = np.zeros(len(class_names), dtype=np.int64)
        self.top, self.low, self.unsure = _Kept(gallery), _Kept(gallery), _Kept(gallery)
        self.uncertain = _Kept(rank_limit or 0)

    def add(self, paths: Sequence[str], labels: np.ndarray, values: np.ndarray, decided: np.ndarray) -> None:
        """A batch in row order: paths, top-k labels ``(B, k)``, their float32 probabilities ``(B, k)``, and
        whether each is decided ``(B,)``."""
        count = len(paths)
        if not count:
            return
        order = np.arange(self.counted, self.counted + count)
        self.counted += count
        top1, best = labels[:, 0], values[:, 0].astype(np.float32)
        self.decided += np.bincount(top1[decided], minlength=len(self.class_names))
        self.abstained += np.bincount(top1[~decided], minlength=len(self.class_names))
        payload = {"path": np.array(paths, dtype=object), "labels": labels, "values": values, "decided": decided}
        sure, unsure = np.flatnonzero(decided), np.flatnonzero(~decided)
        self.top.offer(top1[sure], best[sure], order[sure], payload, sure)
        self.low.offer(top1[sure], -best[sure], order[sure], payload, sure)
        self.unsure.offer(np.zeros(len(unsure), dtype=np.int64), best[unsure], order[unsure], payload, unsure)
        if self.rank_limit is not None:
            margin = best - values[:, 1].astype(np.float32) if values.shape[1] > 1 else np.ones(count, np.float32)
            self.uncertain.offer(np.zeros(count, dtype=np.int64), -margin, order, payload, np.arange(count))

    def add_rows(self, rows: Iterable[Row]) -> None:
        """Rows read back from a rows file, in order."""
        index = {name: i for i, name in enumerate(self.class_names)}
        chunk: list[Row] = []
        for row in chain(rows, [None]):
            if row is not None:
                chunk.append(row)
            if chunk and (row is None or len(chunk) >= CHUNK):
                labels = np.array([[index[name] for name in r.classes] for r in chunk], dtype=np.int64)
                values = np.array([r.probabilities for r in chunk], dtype=np.float32)  # the float32 written
                self.add([r.path for r in chunk], labels, values, np.array([r.label is not None for r in chunk]))
                chunk = []

    def result(self, unreadable: list[tuple[str, str]]) -> Summary:
        """The summary of every batch added."""
        names = self.class_names
        return Summary(
            names, self.counted, dict(zip(names, self.decided.tolist())), dict(zip(names, self.abstained.tolist())),
            sorted(unreadable), {c: self.top.rows(names, c) for c in self.top.groups()},
            {c: self.low.rows(names, c) for c in self.top.groups()}, self.unsure.rows(names),
            self.uncertain.rows(names) if self.rank_limit is not None else [])

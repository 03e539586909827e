"""The rows of a prediction: ``predictions.csv`` or ``predictions.jsonl``, and ``unreadable.csv``.

One row per image, in the inputs' order (sorted by path). ``predictions.csv`` columns:

- ``path``: the image file's absolute path;
- ``decision``: the decided class name, or ``abstain`` (:data:`predict.decisions.ABSTAIN`);
- ``decision_label``: the decided class index; empty when abstaining (so a class that
  happens to be named ``abstain`` stays unambiguous);
- ``class_1``, ``probability_1``, ..., ``class_k``, ``probability_k``: the ``--top-k``
  most probable classes and their probabilities, highest first (on ties the lower
  class index first), written with 9 significant digits (float32 round-trips exactly).

``predictions.jsonl`` holds the same per line: ``{"path", "decision", "decision_label"
(null when abstaining), "top": [{"class", "probability"}, ...]}``. ``unreadable.csv``:
``path, reason`` per image that could not be decoded.

Rows are appended as batches finish (memory bounded by the batch). Every reader
validates: the header, each row's fields, absolute paths in strictly increasing order
(each image once), decisions and classes of the model, probabilities in [0, 1] from
highest to lowest; every problem is named with its row. A ``--stream`` output killed
mid-write may end in a torn row: :func:`recover` drops it (only a last row without its
line end can be torn) and truncates the file there, so a resumed run writes no row twice.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from common.errors import FileProblems
from common.files import append_csv, csv_text, plain_cells, restored_cell
from common.paths import display_path
from predict.decisions import ABSTAIN

log = logging.getLogger(__name__)

ROWS_FILES = {"csv": "predictions.csv", "jsonl": "predictions.jsonl"}
"""``--format`` -> the rows file."""

UNREADABLE_FILE = "unreadable.csv"
UNREADABLE_HEADER = ("path", "reason")


class RowsFileError(FileProblems):
    """A rows file of a prediction output has problems, each with its row."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the prediction files")


@dataclass(frozen=True)
class Row:
    """One image's prediction, as a rows file holds it.

    Attributes:
        path: The image file (absolute).
        decision: The decided class name, or ``abstain``.
        label: The decided class index, or None when abstaining.
        classes: The top-k class names, highest first.
        probabilities: Their probabilities.
    """

    path: str
    decision: str
    label: int | None
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def margin(self) -> float:
        """Top-1 probability minus the runner-up's (1 with a single column)."""
        return self.probabilities[0] - self.probabilities[1] if len(self.probabilities) > 1 else 1.0


def header(top_k: int) -> list[str]:
    """The ``predictions.csv`` header for ``top_k`` classes."""
    return ["path", "decision", "decision_label",
            *(name for i in range(1, top_k + 1) for name in (f"class_{i}", f"probability_{i}"))]


def number(value: float) -> str:
    """A probability as written: 9 significant digits (a float32 round-trips exactly)."""
    return "%.9g" % value


class RowWriter:
    """Appends rows to a prediction folder's rows file and ``unreadable.csv``.

    Args:
        folder: The output (or staging) folder.
        fmt: ``csv`` or ``jsonl``.
        top_k: Classes per row.
        class_names: The model's classes.
    """

    def __init__(self, folder: Path, fmt: str, top_k: int, class_names: Sequence[str]):
        self.path = Path(folder) / ROWS_FILES[fmt]
        self.unreadable_path = Path(folder) / UNREADABLE_FILE
        self.fmt, self.top_k, self.class_names = fmt, top_k, list(class_names)
        self._cells = np.array(self.class_names, dtype=object) if plain_cells(self.class_names) else None
        self._line = "%s,%s,%s" + ",%s,%.9g" * top_k + "\n"  # as csv_text writes a row of plain cells
        if not self.path.exists():
            self._append("" if fmt == "jsonl" else csv_text(header(top_k), []))
        if not self.unreadable_path.exists():
            append_csv(self.unreadable_path, UNREADABLE_HEADER, [])

    def write(self, paths: Sequence[str], labels: np.ndarray, values: np.ndarray, top1: np.ndarray,
              decided: np.ndarray) -> None:
        """Append a batch: paths, top-k labels and values ``(B, k)``, top-1 ``(B,)``, decided ``(B,)``."""
        if self.fmt == "csv" and self._cells is not None and plain_cells(paths):
            self._append(self._plain_csv(paths, labels, values, top1, decided))
            return
        names = self.class_names
        self._append(self._text(
            (path, names[best] if ok else ABSTAIN, best if ok else None, [names[c] for c in classes], probabilities)
            for path, classes, probabilities, best, ok in zip(paths, labels.tolist(), values.tolist(), top1.tolist(),
                                                              decided.tolist())))

    def _plain_csv(self, paths: Sequence[str], labels: np.ndarray, values: np.ndarray, top1: np.ndarray,
                   decided: np.ndarray) -> str:
        """A batch's CSV lines when no cell needs quoting or neutralising: the text :meth:`_text` writes, at a
        quarter of its cost (``tests/predict/test_rows.py`` compares the two)."""
        fields = np.empty((len(paths), 3 + 2 * self.top_k), dtype=object)  # B x (path, decision, label, k pairs)
        fields[:, 0] = paths
        fields[:, 1] = np.where(decided, self._cells[top1], ABSTAIN)
        fields[:, 2] = np.where(decided, top1, "")
        fields[:, 3::2] = self._cells[labels]  # (B, k) class names
        fields[:, 4::2] = values.astype(np.float64)  # (B, k) probabilities, exactly
        return "".join([self._line % tuple(row) for row in fields.tolist()])

    def write_rows(self, rows: Iterable[Row]) -> None:
        """Append rows read from another output (a shard), written exactly as :meth:`write` writes them."""
        self._append(self._text((row.path, row.decision, row.label, row.classes, row.probabilities) for row in rows))

    def write_unreadable(self, entries: Iterable[tuple[str, str]]) -> None:
        """Append ``(path, reason)`` of images that could not be decoded."""
        entries = list(entries)
        if entries:
            append_csv(self.unreadable_path, UNREADABLE_HEADER, entries)

    def _text(self, records: Iterable[tuple[str, str, int | None, Sequence[str], Sequence[float]]]) -> str:
        """``(path, decision, label, classes, probabilities)`` records as lines of the rows file."""
        if self.fmt == "jsonl":
            return "".join(json.dumps({"path": path, "decision": decision, "decision_label": label,
                                       "top": [{"class": c, "probability": float(number(p))}
                                               for c, p in zip(classes, probabilities)]}, ensure_ascii=False) + "\n"
                           for path, decision, label, classes, probabilities in records)
        rows = []
        for path, decision, label, classes, probabilities in records:
            row = [path, decision, "" if label is None else label, *classes, *classes]  # 3 + 2k fields
            row[3::2] = classes
            row[4::2] = ["%.9g" % p for p in probabilities]  # as number() writes them, without a call per value
            rows.append(row)
        return csv_text(None, rows)

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8", newline="") as stream:
            stream.write(text)


def read_rows(folder: Path, fmt: str, top_k: int, class_names: Sequence[str]) -> Iterator[Row]:
    """The rows of a finished output, validated (see the module docstring).

    Raises:
        RowsFileError: Naming every problem with its row (a torn last row included).
    """
    reader = _Reader(Path(folder) / ROWS_FILES[fmt], fmt, top_k, list(class_names))
    for row, _end, complete in reader.records():
        if not complete:
            reader.problem(reader.number, "the last row is cut off (a killed --stream run: resume it with --resume)")
        elif row is not None:
            yield row
    reader.raise_problems()


def recover(folder: Path, fmt: str, top_k: int, class_names: Sequence[str]) -> set[str]:
    """The paths a killed ``--stream`` run finished; a torn last row is cut off the files.

    Returns:
        The paths of the rows file and ``unreadable.csv`` (those need no prediction).

    Raises:
        RowsFileError: For problems other than a torn last row.
    """
    path = Path(folder) / ROWS_FILES[fmt]
    done: set[str] = set()
    if path.exists():
        reader = _Reader(path, fmt, top_k, list(class_names))
        good = 0
        for row, end, complete in reader.records():
            if complete:
                good = end
                done |= {row.path} if row is not None else set()
        reader.raise_problems()
        _truncate(path, good)
    return done | {entry[0] for entry in read_unreadable(folder, recovering=True)}


def read_unreadable(folder: Path, recovering: bool = False) -> list[tuple[str, str]]:
    """``unreadable.csv``: ``(path, reason)`` per image (empty without the file); with ``recovering``, a torn
    last row is cut off.

    Raises:
        RowsFileError: For a damaged file.
    """
    path = Path(folder) / UNREADABLE_FILE
    if not path.exists():
        return []
    reader = _Reader(path, "unreadable", 0, [])
    entries, good = [], 0
    for fields, end, complete in reader.records():
        if complete:
            good = end
            entries += [tuple(fields)] if fields is not None else []
        elif not recovering:
            reader.problem(reader.number, "the last row is cut off (a killed --stream run: resume it with --resume)")
    reader.raise_problems()
    if recovering:
        _truncate(path, good)
    return entries


def _truncate(path: Path, size: int) -> None:
    if path.stat().st_size != size:
        log.warning("%s: cut off a torn last row (the run was killed while writing it)", display_path(path))
        os.truncate(path, size)


class _Reader:
    """Reads a rows file record by record, with the byte offset where each record ends."""

    def __init__(self, path: Path, kind: str, top_k: int, class_names: list[str]):
        self.path, self.shown, self.kind = path, display_path(path), kind
        self.top_k, self.class_names, self.names = top_k, class_names, set(class_names)
        self.problems: list[str] = []
        self.number = 0
        self.last_path: str | None = None

    def problem(self, number: int, text: str) -> None:
        """Note a problem of row ``number`` (1 = the header, for CSV files)."""
        self.problems.append(f"{self.shown}:{number}: {text}")

    def raise_problems(self) -> None:
        """Raise every problem noted.

        Raises:
            RowsFileError: When there is one.
        """
        if self.problems:
            raise RowsFileError(self.problems)

    def records(self) -> Iterator[tuple[Any, int, bool]]:
        """``(parsed row or None, end offset, complete)`` per record; the header is checked, not yielded."""
        with open(self.path, "rb") as stream:
            if self.kind == "jsonl":
                for self.number, (line, end) in enumerate(_lines(stream), start=1):
                    complete = line.endswith("\n")
                    yield (self._json_row(line) if complete else None), end, complete
                return
            yield from self._csv_records(stream)

    def _csv_records(self, stream: BinaryIO) -> Iterator[tuple[Any, int, bool]]:
        position = {"end": 0, "last": ""}

        def lines() -> Iterator[str]:
            for line, end in _lines(stream):
                position["end"], position["last"] = end, line
                yield line

        reader = csv.reader(lines(), strict=True)
        expected = list(UNREADABLE_HEADER) if self.kind == "unreadable" else header(self.top_k)
        try:
            for self.number, fields in enumerate(reader, start=1):
                complete = position["last"].endswith("\n")
                if self.number == 1:
                    if complete and fields != expected:
                        self.problem(1, f"expected the header {expected}; got {fields}")
                    yield None, (position["end"] if complete else 0), complete
                    continue
                yield (self._csv_row(fields) if complete else None), position["end"], complete
        except csv.Error as exc:
            if stream.read(1):  # not at the end: a damaged row, not one cut off by a kill
                self.problem(self.number + 1, f"not valid CSV ({exc})")
            else:  # an open quote at the very end: a row cut off inside a quoted field
                yield None, position["end"], False

    def _csv_row(self, fields: list[str]) -> Any:
        fields = [restored_cell(field) for field in fields]  # the writer's neutralised cells, given back exactly
        if self.kind == "unreadable":
            if len(fields) != 2:
                self.problem(self.number, f"{len(fields)} fields; expected path, reason")
                return None
            return fields if self._check_path(fields[0], ordered=False) else None
        if len(fields) != 3 + 2 * self.top_k:
            self.problem(self.number, f"{len(fields)} fields, the header has {3 + 2 * self.top_k}")
            return None
        label = None if fields[2] == "" else fields[2]
        return self._row(fields[0], fields[1], label, fields[3::2], fields[4::2])

    def _json_row(self, line: str) -> Row | None:
        try:
            data = json.loads(line)
            top = data["top"]
            return self._row(data["path"], data["decision"], data["decision_label"],
                             [item["class"] for item in top], [item["probability"] for item in top])
        except (ValueError, KeyError, TypeError):
            self.problem(self.number, "not a prediction row (a JSON object with path, decision, decision_label, top)")
            return None

    def _row(self, path: Any, decision: Any, label: Any, classes: list[Any], values: list[Any]) -> Row | None:
        """A validated row, or None (its problems noted)."""
        before = len(self.problems)
        self._check_path(path)
        probabilities = _probabilities(values)
        if len(classes) != self.top_k or probabilities is None or any(c not in self.names for c in classes):
            self.problem(self.number, f"expected {self.top_k} classes of the model with probabilities in [0, 1]")
        elif any(a < b for a, b in zip(probabilities, probabilities[1:])):
            self.problem(self.number, "the probabilities are not from highest to lowest")
        index = _label(label)
        decided_ok = (decision == ABSTAIN and index is None) or (
            index is not None and index < len(self.class_names) and self.class_names[index] == decision
            and classes[:1] == [decision])
        if not decided_ok:
            self.problem(self.number, f"decision {decision!r} with decision_label {label!r} is neither abstain "
                                      "(with no label) nor the top-1 class with its index")
        if len(self.problems) > before:
            return None
        return Row(path, decision, index, tuple(classes), tuple(probabilities))

    def _check_path(self, path: Any, ordered: bool = True) -> bool:
        if not isinstance(path, str) or not os.path.isabs(path):
            self.problem(self.number, f"path {path!r} is not absolute")
            return False
        if ordered and self.last_path is not None and path <= self.last_path:
            self.problem(self.number, f"path {path!r} is not after the row before it (rows are sorted by path, "
                                      "each image once)")
        self.last_path = path
        return True


def _lines(stream: BinaryIO) -> Iterator[tuple[str, int]]:
    """``(decoded line with its line end, byte offset after it)``; only ``\\n`` ends a line."""
    end = 0
    for raw in stream:
        end += len(raw)
        yield raw.decode("utf-8", "replace"), end


def _probabilities(values: list[Any]) -> list[float] | None:
    try:
        numbers = [float(v) if not isinstance(v, bool) else float("nan") for v in values]
    except (TypeError, ValueError):
        return None
    return numbers if all(0 <= v <= 1 for v in numbers) else None


def _label(label: Any) -> int | None:
    if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
        return label
    if isinstance(label, str) and label.isascii() and label.isdigit():
        return int(label)
    return None

"""An evaluation's result files and their one owner: ``predictions.csv`` and ``evaluation.json``.

``predictions.csv`` is the result file: one row per sample; scoring needs nothing else.

Columns: ``path`` (image path relative to the data set folder, as in the list file),
``true_label`` and ``predicted_label`` (class indices), then one ``score:<class name>``
column per class in class-index order, holding that class's probability (float32,
written with 9 significant digits, which round-trips exactly).

``evaluation.json`` records what was evaluated (:class:`EvaluationRecord`): the model,
the list, the data set folder (for thumbnails), skipped images and the model card's
training figures. Both are written and read only here.
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import atomic_write_text, write_json
from common.paths import display_path

FIXED_COLUMNS = ("path", "true_label", "predicted_label")
SCORE_PREFIX = "score:"


@dataclass
class Predictions:
    """A labelled set of predictions.

    Attributes:
        paths: Image path per sample.
        labels: True class index per sample ``(N,)``.
        probabilities: Class probabilities ``(N, K)``.
        class_names: ``K`` class names.
    """

    paths: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class per sample (arg-max, first on ties)."""
        return self.probabilities.argmax(axis=1)


def write_predictions(path: Path, predictions: Predictions) -> None:
    """Write ``predictions.csv`` atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *(f"{SCORE_PREFIX}{name}" for name in predictions.class_names)])
    predicted = predictions.predicted
    for row, (image, label) in enumerate(zip(predictions.paths, predictions.labels)):
        scores = [f"{value:.9g}" for value in predictions.probabilities[row]]
        writer.writerow([image, int(label), int(predicted[row]), *scores])
    atomic_write_text(path, buffer.getvalue())


def read_predictions(path: Path) -> Predictions:
    """Read and validate a ``predictions.csv``.

    Raises:
        UserError: Naming the file and row for a wrong header, a row with the wrong
            number of fields, a label that is not a class index, a score that is not a
            finite number, a predicted label that is not the highest score, or no rows.
    """
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: predictions file not found")
    with open(path, newline="", encoding="utf-8") as stream:
        rows = csv.reader(stream)
        header = next(rows, None)
        if header is None or tuple(header[:3]) != FIXED_COLUMNS or len(header) < 5 or not all(
                column.startswith(SCORE_PREFIX) for column in header[3:]):
            raise UserError(
                f"{shown}:1: expected the header {', '.join(FIXED_COLUMNS)}, then one '{SCORE_PREFIX}<class name>' "
                f"column per class (at least two); got {header}"
            )
        class_names = [column[len(SCORE_PREFIX):] for column in header[3:]]
        classes = len(class_names)
        paths, labels, predicted, scores, numbers = [], [], [], [], []
        for number, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise UserError(f"{shown}:{number}: {len(row)} fields, the header has {len(header)}")
            try:
                label, guess = int(row[1]), int(row[2])
                values = [float(v) for v in row[3:]]
            except ValueError as exc:
                raise UserError(f"{shown}:{number}: {exc}") from None
            if not (0 <= label < classes and 0 <= guess < classes):
                raise UserError(f"{shown}:{number}: labels must be class indices 0..{classes - 1}, "
                                f"got true_label {label}, predicted_label {guess}")
            if not all(math.isfinite(v) for v in values):
                raise UserError(f"{shown}:{number}: scores must be finite numbers")
            paths.append(row[0])
            labels.append(label)
            predicted.append(guess)
            scores.append(values)
            numbers.append(number)
    if not paths:
        raise UserError(f"{shown}: no predictions (only a header)")
    probabilities = np.asarray(scores, dtype=np.float32)
    disagree = np.flatnonzero(probabilities.argmax(axis=1) != np.asarray(predicted))
    if len(disagree):
        raise UserError(f"{shown}:{numbers[disagree[0]]}: predicted_label is not the class with the highest score")
    return Predictions(paths, np.asarray(labels, dtype=np.int64), probabilities, class_names)


EVALUATION_RECORD = "evaluation.json"
"""The file name of an evaluation's :class:`EvaluationRecord`."""


@dataclass
class EvaluationRecord:
    """``evaluation.json``: what an evaluation folder holds the results of.

    Attributes:
        name: The evaluation's name (its folder).
        created: When it was written (ISO 8601).
        model: The model file, as shown to the user.
        list: The list file evaluated.
        class_names: The model's classes.
        dataset_root: The data set folder the image paths are relative to (absolute), if known.
        model_name: The model card's name.
        network_hash: The model's network config hash.
        source_run: The training run the model came from.
        input_contract: The model's input contract.
        training: The model card's training figures (``epoch``, ``metrics``, ``best``).
        skipped: Images left out because they could not be decoded.
        rescored_from: The predictions file this was re-scored from, if it was.
    """

    name: str
    created: str
    model: str = "unknown"
    list: str = "unknown"
    class_names: list[str] = field(default_factory=builtins.list)  # the field `list` shadows the builtin here
    dataset_root: str | None = None
    model_name: str | None = None
    network_hash: str | None = None
    source_run: str | None = None
    input_contract: dict | None = None
    training: dict | None = None
    skipped: list[str] = field(default_factory=builtins.list)
    rescored_from: str | None = None


def write_evaluation_record(folder: Path, record: EvaluationRecord) -> None:
    """Write ``<folder>/evaluation.json``."""
    write_json(Path(folder) / EVALUATION_RECORD, asdict(record))


def read_evaluation_record(folder: Path) -> EvaluationRecord | None:
    """``<folder>/evaluation.json``, or None when the folder has none.

    Raises:
        UserError: When the file exists but is not a valid record.
    """
    path = Path(folder) / EVALUATION_RECORD
    if not path.is_file():
        return None
    shown = display_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{shown}: unreadable evaluation record ({exc})") from None
    known = {f.name for f in fields(EvaluationRecord)}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or set(data) - known:
        extra = sorted(set(data) - known) if isinstance(data, dict) else []
        raise UserError(f"{shown}: not an evaluation record of this project"
                        + (f" (unknown field(s) {extra})" if extra else ""))
    return EvaluationRecord(**{"created": "", **data})

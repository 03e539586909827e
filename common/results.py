"""An evaluation's result files and their one owner: ``predictions.csv`` and ``evaluation.json``.

``predictions.csv`` is the result file: one row per sample; scoring needs nothing else.

Columns: ``path`` (image path relative to the data set folder, as in the list file),
``true_label`` and ``predicted_label`` (class indices), then one ``score:<class name>``
column per class in class-index order, holding that class's probability (float32,
written with 9 significant digits, which round-trips exactly).

``evaluation.json`` records what was evaluated (:class:`EvaluationRecord`): the model
(and its sha256), the list, the data set folder (for thumbnails), skipped images and
the model card's training figures. Both are written and read only here. They cross stage boundaries:
evaluation writes them, ``evaluate score``/``compare`` read them, the data tools read
out-of-sample probabilities from them, cross-validation writes the same
``predictions.csv`` format, and prediction takes its operating points from an
evaluation folder.

Reading validates like a list file: every problem is reported at once, each with
its row (:class:`ResultFileError`). A row's path must be relative, stay inside the
data set folder and appear once; labels are class indices in ASCII digits; scores
are probabilities in [0, 1] summing to 1 within :data:`SUM_TOLERANCE`; the score
columns are distinct and, when ``evaluation.json`` lies beside the file, name its
classes in its order.

Prediction takes its operating points from an evaluation through
:func:`read_operating_points`: the per-class thresholds ``metrics.json`` holds for a
target precision or recall, checked against ``evaluation.json`` (the classes, and the
sha256 of the model that was evaluated).
"""

from __future__ import annotations

import builtins
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import FileProblems, UserError
from common.files import read_csv, read_json, write_csv, write_json
from common.limits import MAX_CLASSES
from common.lists import normalise_path, parse_label
from common.paths import display_path

FIXED_COLUMNS = ("path", "true_label", "predicted_label")
SCORE_PREFIX = "score:"

SUM_TOLERANCE = 1e-3
"""How far a row's probabilities may sum from 1 (float32 softmax outputs, written with 9 digits, are within 1e-6),
unless ``evaluation.json`` records more for a quantized model (:func:`sum_tolerance_for`)."""

EVALUATION_RECORD = "evaluation.json"
"""The file name of an evaluation's :class:`EvaluationRecord`."""

METRICS = "metrics.json"
"""The file name of an evaluation's metrics (written by ``evaluate``; its operating points are read here)."""

OPERATING_KINDS = ("precision", "recall")
"""The kinds of target an evaluation computes per-class thresholds for."""


class ResultFileError(FileProblems):
    """``predictions.csv`` or ``evaluation.json`` has one or more problems, each with file and row."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the result files")


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
    predicted = predictions.predicted
    write_csv(path, [*FIXED_COLUMNS, *(f"{SCORE_PREFIX}{name}" for name in predictions.class_names)],
              ([image, int(label), int(predicted[row]), *(f"{value:.9g}" for value in predictions.probabilities[row])]
               for row, (image, label) in enumerate(zip(predictions.paths, predictions.labels))))


@dataclass
class _Rows:
    """What the rows of a ``predictions.csv`` held, before the score checks.

    Every row with the header's number of fields and numeric scores is kept (an
    invalid path or label as None or -1), so its scores are checked too; the rows
    become :class:`Predictions` only when no problem was found.

    Attributes:
        paths: Normalised path per kept row.
        labels: True label per kept row.
        predicted: Predicted label per kept row.
        scores: Scores per kept row.
        numbers: File row number (1 = header) per kept row.
        problems: ``(row number, message)`` per problem found.
    """

    paths: list[str | None] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


def read_predictions(path: Path, record: EvaluationRecord | None = None) -> Predictions:
    """Read and validate a ``predictions.csv``, reporting every problem with its row.

    Args:
        path: The file.
        record: The evaluation's ``evaluation.json``, when known: the score columns
            must then name its classes, in its order.

    Raises:
        UserError: When the file is missing or unreadable.
        ResultFileError: Listing every problem: a header that is not ``path,
            true_label, predicted_label, score:<class>...`` (at least two classes,
            no class twice, the record's classes), a row with the wrong number of
            fields, a path that is absolute, leaves the data set folder or repeats
            a row, a label that is not a class index in ASCII digits, a score that
            is not a probability, scores not summing to 1, a predicted label that is
            not the highest score, or no rows.
    """
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: predictions file not found")
    rows = iter(read_csv(path))
    header = next(rows, None) or []
    class_names, header_problems = _check_header(header, shown, record)
    parsed = _read_rows(rows, shown, class_names)
    tolerance = record.sum_tolerance if record is not None and record.sum_tolerance else SUM_TOLERANCE
    parsed.problems += _check_scores(parsed, shown, class_names, tolerance)
    problems = [*header_problems, *(text for _, text in sorted(parsed.problems, key=lambda item: item[0]))]
    if not parsed.numbers and not parsed.problems:
        problems.append(f"{shown}: no predictions (only a header)")
    if problems:
        raise ResultFileError(problems)
    return Predictions(parsed.paths, np.asarray(parsed.labels, dtype=np.int64),
                       np.asarray(parsed.scores, dtype=np.float32), class_names)


def _check_header(header: list[str], shown: str, record: EvaluationRecord | None) -> tuple[list[str], list[str]]:
    """The class names of the score columns and the header's problems.

    Raises:
        ResultFileError: When the columns cannot be interpreted at all.
    """
    expected = (f"expected the header {', '.join(FIXED_COLUMNS)}, then one '{SCORE_PREFIX}<class name>' column per "
                f"class (at least two)")
    if tuple(header[:3]) != FIXED_COLUMNS or len(header) < 5:
        raise ResultFileError([f"{shown}:1: {expected}; got {header}"])
    fatal = [f"{shown}:1: column {index} {column!r} is not a '{SCORE_PREFIX}<class name>' column; {expected}"
             for index, column in enumerate(header[3:], start=4) if not column.startswith(SCORE_PREFIX)]
    if fatal:
        raise ResultFileError(fatal)
    names = [column[len(SCORE_PREFIX):] for column in header[3:]]
    if len(names) > MAX_CLASSES:
        raise ResultFileError([f"{shown}:1: {len(names)} score columns; this project handles at most {MAX_CLASSES} "
                               "classes (common.limits.MAX_CLASSES)"])
    problems, first = [], {}
    for index, name in enumerate(names, start=4):
        if not name.strip():
            problems.append(f"{shown}:1: column {index} {header[index - 1]!r} names no class")
        elif name in first:
            problems.append(f"{shown}:1: column {index} {header[index - 1]!r} repeats column {first[name]}")
        else:
            first[name] = index
    if record is not None and record.class_names and names != record.class_names:
        problems.append(f"{shown}:1: the score columns name {len(names)} classes {names}, but {EVALUATION_RECORD} "
                        f"beside it names {len(record.class_names)}: {record.class_names}")
    return names, problems


def _read_rows(rows: Any, shown: str, class_names: list[str]) -> _Rows:
    """Parse every row; well-formed ones are kept, each problem is noted with its row number."""
    parsed = _Rows()
    width, classes = len(class_names) + 3, len(class_names)
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"{shown}:{number}"
        if len(row) != width:
            parsed.problems.append((number, f"{where}: {len(row)} fields, the header has {width}"))
            continue
        found = _row_problems(row, where, classes)
        relative = normalise_path(row[0]) if "\\" not in row[0] else None
        if relative is not None and relative in first_row:
            found.append(f"{where}: {relative!r} is listed twice (first on row {first_row[relative]})")
        elif relative is not None:
            first_row[relative] = number
        values = _parse_scores(row[3:], class_names)
        if isinstance(values, str):
            found.append(f"{where}: {values}")
        parsed.problems += [(number, text) for text in found]
        if not isinstance(values, str):
            parsed.paths.append(relative)
            parsed.labels.append(_label(row[1], classes))
            parsed.predicted.append(_label(row[2], classes))
            parsed.scores.append(values)
            parsed.numbers.append(number)
    return parsed


def _label(text: str, classes: int) -> int:
    """The class index ``text`` holds, or -1."""
    label = parse_label(text)
    return label if label is not None and label < classes else -1


def _row_problems(row: list[str], where: str, classes: int) -> list[str]:
    """A row's problems with its path and labels."""
    problems = []
    if "\\" in row[0] or normalise_path(row[0]) is None:
        problems.append(f"{where}: path {row[0]!r} is not relative to the data set folder (absolute, leaving it, "
                        "empty or with '\\'); results name images as the list file does")
    for column, text in zip(FIXED_COLUMNS[1:], row[1:3]):
        if _label(text, classes) < 0:
            problems.append(f"{where}: {column} {text!r} is not a class index 0..{classes - 1} (ASCII digits)")
    return problems


def _parse_scores(texts: list[str], class_names: list[str]) -> list[float] | str:
    """A row's scores as numbers, or what is wrong with the first that is not one."""
    values = []
    for name, text in zip(class_names, texts):
        try:
            values.append(float(text))
        except ValueError:
            return f"{SCORE_PREFIX}{name} {text!r} is not a number"
    return values


def _check_scores(parsed: _Rows, shown: str, class_names: list[str], tolerance: float) -> list[tuple[int, str]]:
    """Problems of the well-formed rows' scores: not probabilities, not summing to 1, or not matching predicted_label."""
    if not parsed.scores:
        return []
    scores = np.asarray(parsed.scores, dtype=np.float64)  # (N, K)
    problems = []
    outside = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    for i in np.flatnonzero(outside.any(axis=1)):
        column = int(np.flatnonzero(outside[i])[0])
        problems.append((parsed.numbers[i], f"{shown}:{parsed.numbers[i]}: {SCORE_PREFIX}{class_names[column]} is "
                         f"{scores[i, column]:g}; scores are probabilities in [0, 1]"))
    sums = scores.sum(axis=1)
    for i in np.flatnonzero(~outside.any(axis=1) & (np.abs(sums - 1) > tolerance)):
        problems.append((parsed.numbers[i], f"{shown}:{parsed.numbers[i]}: the scores sum to {sums[i]:.6g}, not 1 "
                         f"(within {tolerance:g}); a row holds probabilities, not logits"))
    predicted = np.asarray(parsed.predicted)
    disagree = (scores.astype(np.float32).argmax(axis=1) != predicted) & (predicted >= 0)
    for i in np.flatnonzero(disagree & ~outside.any(axis=1)):
        problems.append((parsed.numbers[i], f"{shown}:{parsed.numbers[i]}: predicted_label is not the class with "
                         "the highest score"))
    return problems


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
        sum_tolerance: How far a row's scores may sum from 1, when a quantized
            model's own outputs need more than :data:`SUM_TOLERANCE` (None: that).
        model_sha256: The sha256 of the model file evaluated (None in evaluations
            written before it was recorded, and in re-scored files without a record).
        list_sha256: The sha256 of the list file evaluated.
        list_version: Its version in the data set's list history (``common.list_versions``), when known.
        training_lists: The lists the model was trained and validated on, from its card
            (``split -> {"path", "sha256", "samples", "version"}``), when the card names them.
        out_of_sample: Set when every probability comes from a model that never trained on
            its image (cross-validation): ``{"method", "folds", "seed", "fold_file", "runs": [{"fold",
            "run", "run_dir", "checkpoint", "checkpoint_sha256", "holdout", "holdout_sha256",
            "samples"}]}``; ``fold_file`` (``folds.csv``: ``path,fold``) says which fold produced each row.
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
    sum_tolerance: float | None = None
    model_sha256: str | None = None
    list_sha256: str | None = None
    list_version: int | None = None
    training_lists: dict | None = None
    out_of_sample: dict | None = None


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "class_names": (builtins.list,), "skipped": (builtins.list,), "input_contract": (dict, type(None)),
    "training": (dict, type(None)), "created": (str,), "model": (str,), "list": (str,),
    "sum_tolerance": (float, type(None)), "list_version": (int, type(None)), "training_lists": (dict, type(None)),
    "out_of_sample": (dict, type(None))}
"""Field types of :class:`EvaluationRecord` that are not ``str | None``."""


def write_evaluation_record(folder: Path, record: EvaluationRecord) -> None:
    """Write ``<folder>/evaluation.json``."""
    write_json(Path(folder) / EVALUATION_RECORD, asdict(record))


def read_evaluation_record(folder: Path) -> EvaluationRecord | None:
    """``<folder>/evaluation.json``, or None when the folder has none.

    Raises:
        ResultFileError: When the file exists but is not a valid record: not a JSON
            object, unknown fields, a field of the wrong type, a class name or
            skipped path that is not a string, or a data set folder that is not
            an absolute path.
    """
    path = Path(folder) / EVALUATION_RECORD
    if not path.is_file():
        return None
    shown = display_path(path)
    try:
        data = read_json(path, "not JSON")
    except UserError as exc:
        raise ResultFileError([str(exc)]) from None
    known = {f.name for f in fields(EvaluationRecord)}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ResultFileError([f"{shown}: not an evaluation record of this project (no name)"])
    problems = [f"{shown}: unknown field {key!r}" for key in sorted(set(data) - known)]
    for key, value in data.items():
        if key in known and not isinstance(value, _RECORD_TYPES.get(key, (str, type(None)))):
            problems.append(f"{shown}: {key}: {type(value).__name__} is not of the recorded type")
    for key in ("class_names", "skipped"):
        if isinstance(data.get(key), builtins.list) and not all(isinstance(v, str) for v in data[key]):
            problems.append(f"{shown}: {key}: expected a list of strings")
    digest = data.get("model_sha256")
    if isinstance(digest, str) and not re.fullmatch(r"[0-9a-f]{64}", digest):
        problems.append(f"{shown}: model_sha256 {digest[:80]!r} is not a sha256 (64 hex digits)")
    root = data.get("dataset_root")
    if isinstance(root, str) and not Path(root).is_absolute():
        problems.append(f"{shown}: dataset_root {root!r} is not an absolute path")
    tolerance = data.get("sum_tolerance")
    if isinstance(tolerance, float) and not SUM_TOLERANCE < tolerance <= 1:
        problems.append(f"{shown}: sum_tolerance {tolerance} is not above {SUM_TOLERANCE:g} and at most 1")
    if problems:
        raise ResultFileError(problems)
    return EvaluationRecord(**{"created": "", **data})


def sum_tolerance_for(probabilities: np.ndarray, quantized: bool, model: str) -> float | None:
    """Check a model's probabilities before they are written; the ``sum_tolerance`` to record, or None.

    A float model's softmax rows sum to 1 within :data:`SUM_TOLERANCE`. An int8
    model's probabilities are quantized (steps of about 1/255, clipped at the
    calibrated range), so its rows may sum further from 1: the largest deviation it
    showed, rounded up to 4 decimals, is recorded, and ``score`` holds the file to it.

    Args:
        probabilities: The model's outputs ``(N, K)``.
        quantized: Whether the model is quantized (its card says).
        model: The model, as shown to the user.

    Raises:
        UserError: When the outputs are not probabilities (not finite, outside
            [0, 1]), or a float model's rows do not sum to 1.
    """
    values = np.asarray(probabilities, dtype=np.float64)  # (N, K)
    if not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 1:
        raise UserError(f"{model}: the model's probabilities are not in [0, 1] (from {values.min():g} to "
                        f"{values.max():g}); its card promises a softmax")
    deviation = float(np.abs(values.sum(axis=1) - 1).max(initial=0))
    if deviation <= SUM_TOLERANCE:
        return None
    if not quantized:
        raise UserError(f"{model}: the model's probabilities sum to as far as {deviation:.3g} from 1 (allowed "
                        f"{SUM_TOLERANCE:g}); its card promises a softmax")
    return min(1.0, math.ceil(deviation * 1e4) / 1e4)  # a row of all zeros is 1 away


def read_results(predictions_csv: Path) -> tuple[Predictions, EvaluationRecord | None]:
    """A ``predictions.csv`` and the ``evaluation.json`` beside it (None when there is none), checked together.

    Raises:
        UserError: As :func:`read_evaluation_record` and :func:`read_predictions`.
    """
    record = read_evaluation_record(Path(predictions_csv).parent)
    return read_predictions(predictions_csv, record), record


@dataclass(frozen=True)
class OperatingPoints:
    """Per-class thresholds an evaluation computed for one target precision or recall.

    Attributes:
        evaluation: The evaluation folder, as shown to the user.
        kind: ``precision`` or ``recall``.
        target: The target, e.g. 0.99.
        class_names: The evaluated model's classes.
        thresholds: Per class, the threshold reaching the target on the evaluation's
            data; None where it was unreachable or the class had no samples there.
        model_sha256: The sha256 of the model that was evaluated.
    """

    evaluation: str
    kind: str
    target: float
    class_names: list[str]
    thresholds: list[float | None]
    model_sha256: str


def read_operating_points(folder: Path, kind: str, target: float) -> OperatingPoints:
    """The per-class thresholds of an evaluation for a target ``kind`` (precision or recall).

    Reads ``metrics.json`` (``per_class[i].operating_points[kind]["<target>"].threshold``)
    and checks it against ``evaluation.json``: the per-class rows must name its classes
    in its order, and the record must hold the evaluated model's sha256.

    Args:
        folder: The evaluation folder.
        kind: ``precision`` or ``recall``.
        target: The target the evaluation was asked for (``--precision-targets`` /
            ``--recall-targets``).

    Raises:
        UserError: For a folder that is not an evaluation, an evaluation written
            before models were identified (re-evaluate), a target it did not compute
            (with the ``evaluate score`` line that adds it), or a damaged ``metrics.json``
            (every problem named).
    """
    folder = Path(folder)
    shown = display_path(folder)
    if kind not in OPERATING_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {OPERATING_KINDS}")
    record = read_evaluation_record(folder)
    if record is None or not (folder / METRICS).is_file():
        raise UserError(f"{shown}: not an evaluation folder (it has no {EVALUATION_RECORD} and {METRICS}); name one "
                        "under output/eval/ written by `pipenv run evaluate`")
    if not record.model_sha256:
        raise UserError(f"{display_path(folder / EVALUATION_RECORD)}: no model_sha256: this evaluation was written "
                        "before evaluations recorded which model they measured, so its thresholds cannot be tied to "
                        f"a model. Evaluate the model again: pipenv run evaluate --model <model> --list {record.list}")
    rows = _per_class_rows(folder / METRICS, record.class_names)
    key = f"{target:g}"
    thresholds, problems, computed = [], [], set()
    for index, row in enumerate(rows):
        points = row.get("operating_points")
        targets = points.get(kind) if isinstance(points, dict) else None
        computed |= set(targets) if isinstance(targets, dict) else set()
        point = targets.get(key) if isinstance(targets, dict) else None
        threshold = point.get("threshold") if isinstance(point, dict) else None
        if point is not None and not _is_probability(threshold):
            problems.append(f"{display_path(folder / METRICS)}: per_class[{index}].operating_points.{kind}.{key}: "
                            f"threshold {threshold!r} is not a number in [0, 1]")
        thresholds.append(float(threshold) if point is not None and _is_probability(threshold) else None)
    if key not in computed or float(key) != target:  # 0.9900004 is not the 0.99 that was computed
        _refuse_target(folder, kind, repr(target) if float(key) != target else key, sorted(computed, key=float))
    if problems:
        raise ResultFileError(problems)
    return OperatingPoints(shown, kind, float(target), list(record.class_names), thresholds, record.model_sha256)


def _per_class_rows(path: Path, class_names: list[str]) -> list[dict[str, Any]]:
    """``metrics.json``'s ``per_class`` rows, checked to name ``class_names`` in order.

    Raises:
        ResultFileError: When the file is not metrics of this project or its rows name other classes.
    """
    shown = display_path(path)
    try:
        data = read_json(path, "not JSON")
    except UserError as exc:
        raise ResultFileError([str(exc)]) from None
    rows = data.get("per_class") if isinstance(data, dict) else None
    if not isinstance(rows, builtins.list) or not all(isinstance(row, dict) for row in rows):
        raise ResultFileError([f"{shown}: not the metrics of an evaluation (no per_class rows)"])
    named = [row.get("class") for row in rows]
    if named != class_names:
        raise ResultFileError([f"{shown}: per_class names the classes {named}, but {EVALUATION_RECORD} beside it "
                               f"names {class_names}"])
    return rows


def _refuse_target(folder: Path, kind: str, key: str, computed: list[str]) -> None:
    """Raise the error for a target the evaluation did not compute, with the command that adds it."""
    option = f"--{kind}-targets"
    keep = " ".join([*computed, key])
    raise UserError(f"{display_path(folder)}: the evaluation computed {kind} operating points for "
                    f"{computed or 'no target'}, not {key}. Add it (scoring again, no inference): pipenv run "
                    f"evaluate score {display_path(folder / 'predictions.csv')} {option} {keep}")


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1

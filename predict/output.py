"""A prediction's output folder, ``output/predict/<name>/``, and its one owner.

- ``predictions.csv`` or ``predictions.jsonl``: one row per image (:mod:`predict.rows`);
- ``unreadable.csv``: ``path, reason`` per image that could not be decoded;
- ``prediction.json``: the record (:class:`PredictionRecord`): model and sha256,
  providers, the decision rule and every class's threshold, the inputs and their
  digest, the shard, resumes, merged shards, the summary;
- ``report.html``, ``thumbs/``: counts per class, the abstained images, a gallery per class;
- ``to_label.txt``: with ``--rank uncertainty``, the most uncertain images first, in the
  list-file format.

The record is written and read only here, validated on reading (version, fields,
types), and compared field by field when a run is resumed or shards are merged
(:func:`differences`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from common.errors import FileProblems, UserError
from common.files import atomic_write_text, read_json, write_json
from common.lists import name_problem
from common.paths import display_path, output_dir
from predict.rows import ROWS_FILES, Row

RECORD_FILE = "prediction.json"
"""The record of an output folder; its presence marks a folder that ``predict`` wrote."""

FORMAT_VERSION = 1
"""The layout of :data:`RECORD_FILE` this code writes and reads."""

REPORT_FILE = "report.html"
TO_LABEL_FILE = "to_label.txt"

STATUSES = ("running", "complete")
"""``running``: a ``--stream`` output being written (or killed: ``--resume`` continues it)."""

SAME_SETTINGS = ("model_sha256", "class_names", "top_k", "format", "decision", "inputs_sha256", "inputs_count",
                 "providers")
"""Fields that must agree between a run and the one it resumes, and between the shards of one merge."""


class RecordError(FileProblems):
    """A ``prediction.json`` that is not a valid record."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the prediction record")


@dataclass
class PredictionRecord:
    """``prediction.json``: what an output folder holds the predictions of, and how they were made.

    Attributes:
        name: The output folder's name.
        base_name: The name without a shard's suffix (a merge's default name).
        created: When the output was started (ISO 8601).
        status: ``running`` or ``complete``.
        model: The model file, as shown to the user.
        model_sha256: Its sha256.
        model_name: Its card's name.
        class_names: The model's classes (index = label).
        input_contract: The card's input contract.
        providers: The onnxruntime execution providers the session used.
        top_k: Classes per row.
        format: ``csv`` or ``jsonl``.
        decision: The decision rule, where its thresholds came from, and each class's
            threshold (:meth:`predict.decisions.Thresholds.to_record`).
        inputs_given: The arguments the inputs were gathered from (absolute).
        inputs_count: Images in the whole (unsharded) input list.
        inputs_sha256: The digest of that list (:func:`predict.inputs.inputs_digest`).
        shard: ``{"index", "count"}`` for a shard, else None.
        images: Images this output is responsible for (its shard's share).
        on_unreadable: The unreadable-image policy (``skip`` or ``error``).
        rank: ``uncertainty`` when ``to_label.txt`` is written, else None.
        rank_limit: Images in ``to_label.txt`` (0: all).
        resumed: ``{"at", "done"}`` per resume: when, and how many images were already done.
        merged_from: For a merge, the shard folders it joined.
        summary: Once complete: ``predicted``, ``decided`` (per class), ``abstained``, ``unreadable``.
        format_version: :data:`FORMAT_VERSION`.
    """

    name: str
    base_name: str
    created: str
    status: str
    model: str
    model_sha256: str
    model_name: str
    class_names: list[str]
    input_contract: dict[str, Any]
    providers: list[str]
    top_k: int
    format: str
    decision: dict[str, Any]
    inputs_given: list[str]
    inputs_count: int
    inputs_sha256: str
    shard: dict[str, int] | None
    images: int
    on_unreadable: str
    rank: str | None = None
    rank_limit: int = 0
    resumed: list[dict[str, Any]] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION


_TYPES: dict[str, tuple[type, ...]] = {
    "class_names": (list,), "input_contract": (dict,), "providers": (list,), "top_k": (int,), "decision": (dict,),
    "inputs_given": (list,), "inputs_count": (int,), "shard": (dict, type(None)), "images": (int,),
    "rank": (str, type(None)), "rank_limit": (int,), "resumed": (list,), "merged_from": (list,),
    "summary": (dict, type(None)), "format_version": (int,)}
"""Field types of :class:`PredictionRecord` that are not ``str``."""


def predictions_root() -> Path:
    """``<output>/predict``: where prediction outputs live."""
    return output_dir() / "predict"


def output_folder(name_or_path: Path | str) -> Path:
    """A prediction output named by its folder, or by its name under ``output/predict/``."""
    path = Path(name_or_path)
    return path if path.is_dir() or len(path.parts) > 1 else predictions_root() / path


def write_record(folder: Path, record: PredictionRecord) -> None:
    """Write ``<folder>/prediction.json`` atomically."""
    write_json(Path(folder) / RECORD_FILE, asdict(record))


def read_record(folder: Path) -> PredictionRecord:
    """``<folder>/prediction.json``, validated.

    Raises:
        UserError: When the folder has none (it is not a prediction output).
        RecordError: For another version, unknown or missing fields, or a field of the wrong type.
    """
    path = Path(folder) / RECORD_FILE
    shown = display_path(path)
    if not path.is_file():
        raise UserError(f"{display_path(Path(folder))}: not a prediction output (it has no {RECORD_FILE})")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version") if isinstance(data, dict) else None
        raise RecordError([f"{shown}: format_version {found!r}; this code reads {FORMAT_VERSION}"])
    known = {f.name: f for f in fields(PredictionRecord)}
    problems = [f"{shown}: unknown field {key!r}" for key in sorted(set(data) - set(known))]
    problems += [f"{shown}: missing field {name!r}" for name, f in known.items()
                 if name not in data and f.default is MISSING and f.default_factory is MISSING]
    for key, value in data.items():
        kinds = _TYPES.get(key, (str,))
        if key in known and (not isinstance(value, kinds) or isinstance(value, bool)):
            problems.append(f"{shown}: {key}: {type(value).__name__} is not of the recorded type")
    problems += [f"{shown}: {problem}" for problem in _value_problems(data)]
    if data.get("status") not in STATUSES:
        problems.append(f"{shown}: status {data.get('status')!r} is not one of {list(STATUSES)}")
    if problems:
        raise RecordError(problems)
    return PredictionRecord(**data)


def _value_problems(data: dict[str, Any]) -> list[str]:
    """Problems of the values the readers of a record rely on: class names, format, top-k, shard."""
    problems = []
    names = data.get("class_names")
    if isinstance(names, list) and (len(names) < 2 or not all(isinstance(n, str) for n in names)):
        problems.append("class_names: expected a list of at least two strings")
    if data.get("format") not in ROWS_FILES:
        problems.append(f"format: {data.get('format')!r} is not one of {sorted(ROWS_FILES)}")
    top_k = data.get("top_k")
    if isinstance(top_k, int) and isinstance(names, list) and not 1 <= top_k <= len(names):
        problems.append(f"top_k: {top_k} is not within 1..{len(names)}")
    shard = data.get("shard")
    if isinstance(shard, dict) and not (set(shard) == {"index", "count"} and all(
            isinstance(v, int) and not isinstance(v, bool) for v in shard.values())
            and 0 <= shard["index"] < shard["count"]):
        problems.append(f"shard: {shard!r} is not {{'index': i, 'count': n}} with 0 <= i < n")
    return problems


def differences(record: PredictionRecord, other: PredictionRecord) -> list[str]:
    """The :data:`SAME_SETTINGS` fields in which two records differ, with both values (shortened)."""
    out = []
    for key in SAME_SETTINGS:
        mine, theirs = getattr(record, key), getattr(other, key)
        if mine != theirs:
            out.append(f"{key}: {_short(mine)} vs {_short(theirs)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."


def write_to_label(folder: Path, rows: Sequence[Row], record: PredictionRecord) -> int:
    """Write ``to_label.txt``: the images most uncertain first, in the list-file format.

    ``<absolute path> <label>`` per line, the label being the model's top-1 class index
    (a suggestion to correct); ``#`` comment lines first name the model and the classes
    (index = label, as JSON). An image whose name cannot go in a list file (a line
    break, a control character, leading or trailing white space: :func:`common.lists.name_problem`)
    is left out and counted in a comment.

    Returns:
        The images written.
    """
    index = {name: i for i, name in enumerate(record.class_names)}
    kept = [row for row in rows if name_problem(row.path) is None]
    lines = [
        "# to_label.txt: images to label, most uncertain first (smallest top-1 margin: top-1 minus runner-up "
        "probability); written by pipenv run predict --rank uncertainty",
        f"# model: {json.dumps(record.model, ensure_ascii=True)} sha256 {record.model_sha256}",
        "# format: <absolute image path> <label>; the label is the model's top-1 class index, a suggestion to "
        "correct before the file is imported",
        f"# classes (index = label): {json.dumps(record.class_names, ensure_ascii=True)}",
    ]
    if len(kept) < len(rows):
        lines.append(f"# left out: {len(rows) - len(kept)} image(s) whose names cannot go in a list file")
    lines += [f"{row.path} {index[row.classes[0]]}" for row in kept]
    atomic_write_text(Path(folder) / TO_LABEL_FILE, "\n".join(lines) + "\n")
    return len(kept)

"""A review's two files and their one owner: ``decisions.csv`` (one row per finding) and ``review.json``.

``decisions.csv`` is what a person fills in, in a spreadsheet or an editor: one row per
finding, sorted by severity, with an empty ``action`` column:

- ``relabel:<class name>``: the image gets that label, in every list that holds it;
- ``remove``: the image leaves every list (the file stays in ``raw/``);
- ``keep``: nothing changes (recorded as decided);
- empty: not decided; the row is left alone.

The other columns say what was found (``kind``, ``severity``, ``split``, ``path``,
``given_label``, ``suggested_label``, ``label_quality``, ``duplicate_of``,
``duplicate_split``, ``distance``, ``similarity``, ``detail``), ``list_sha256`` is the
sha256 of the row's list when it was reviewed (a decision is refused once that list
changed), and ``note`` is free text that ``prepare-data apply`` records as the reason.

``review.json`` records the review: the data set, every list reviewed (sha256, version,
samples), where the out-of-sample probabilities came from, counts and settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import FileProblems, UserError
from common.files import read_csv, read_json, write_csv, write_json
from common.lists import normalise_path
from common.paths import display_path

DECISIONS = "decisions.csv"
RECORD = "review.json"
RECORD_VERSION = 1

KINDS = ("cross_split_duplicate", "unreadable", "label_issue", "duplicate", "odd_file")
"""Kinds of finding, most severe first: a leak between splits inflates test figures, an unreadable file stops a
stage, a wrong label teaches the network wrong, a duplicate within a split weighs an image twice, an odd file
may be a mistake."""

COLUMNS = ("finding", "kind", "severity", "split", "path", "given_label", "suggested_label", "label_quality",
           "duplicate_of", "duplicate_split", "distance", "similarity", "detail", "list_sha256", "action", "note")
"""The columns of ``decisions.csv``, in order."""

REQUIRED = ("split", "path", "list_sha256", "action")
"""Columns ``prepare-data apply`` needs (the others are for the person deciding)."""

RELABEL = "relabel:"


@dataclass
class Finding:
    """One problem the review found with one image.

    Attributes:
        kind: One of :data:`KINDS`.
        severity: 0..1 within its kind (1 - label quality; similarity; 1 for exact copies and unreadable files).
        split: The image's list (its most protected one: test, then val, then train, then the others).
        path: The image, relative to the data set folder; the row's action applies to it.
        given_label: Its class index in the lists (None when the lists disagree).
        detail: One sentence for a person.
        suggested_label: The class the out-of-sample probabilities prefer (label issues).
        label_quality: cleanlab's label quality score, 0..1 (label issues).
        duplicate_of: The other image of a duplicate pair.
        duplicate_split: Its list.
        distance: Hamming distance of the two perceptual hashes (0..64).
        similarity: Correlation of the two images at 16x16 gray (1: the same picture).
    """

    kind: str
    severity: float
    split: str
    path: str
    given_label: int | None
    detail: str
    suggested_label: int | None = None
    label_quality: float | None = None
    duplicate_of: str | None = None
    duplicate_split: str | None = None
    distance: int | None = None
    similarity: float | None = None

    def rank(self) -> tuple[int, float, str]:
        """Sort key: kind (:data:`KINDS` order), then severity, highest first, then path."""
        return KINDS.index(self.kind), -self.severity, self.path


@dataclass
class ReviewRecord:
    """``review.json``.

    Attributes:
        dataset: The data set folder (absolute).
        created: When (ISO 8601).
        command: The command line.
        lists: ``split -> {"sha256", "version", "samples"}`` of every list reviewed.
        sources: Where the out-of-sample probabilities came from (one entry per file).
        counts: Findings per kind, and images checked.
        settings: The thresholds used.
        notes: What was not checked, and why.
        format_version: :data:`RECORD_VERSION`.
    """

    dataset: str
    created: str
    command: str = ""
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    format_version: int = RECORD_VERSION


def write_review_files(folder: Path, findings: list[Finding], class_names: tuple[str, ...],
                       list_sha256: dict[str, str], record: ReviewRecord) -> None:
    """Write ``decisions.csv`` (findings sorted by severity, numbered from 1) and ``review.json``.

    Args:
        folder: The review folder (staged).
        findings: Every finding, already sorted.
        class_names: The data set's classes (labels are written as class names).
        list_sha256: ``split -> sha256`` of each list reviewed.
        record: The review's record.
    """
    def name(label: int | None) -> str:
        return "" if label is None else class_names[label]

    def number(value: float | None, digits: int = 4) -> str:
        return "" if value is None else f"{value:.{digits}g}"

    rows = ([index, f.kind, number(f.severity), f.split, f.path, name(f.given_label), name(f.suggested_label),
             number(f.label_quality), f.duplicate_of or "", f.duplicate_split or "",
             "" if f.distance is None else f.distance, number(f.similarity, 6), f.detail,
             list_sha256.get(f.split, ""), "", ""]
            for index, f in enumerate(findings, start=1))
    write_csv(folder / DECISIONS, COLUMNS, rows)
    write_json(folder / RECORD, asdict(record))


def read_review_record(folder: Path) -> ReviewRecord | None:
    """``<folder>/review.json``, or None when there is none.

    Raises:
        UserError: When it exists but is not a review record of this version.
    """
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    data = read_json(path)
    shown = display_path(path)
    known = set(ReviewRecord.__dataclass_fields__)
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str) or set(data) - known:
        raise UserError(f"{shown}: not a review record of this project")
    if data.get("format_version", RECORD_VERSION) != RECORD_VERSION:
        raise UserError(f"{shown}: format_version {data.get('format_version')!r}; this code reads {RECORD_VERSION}")
    return ReviewRecord(**data)


@dataclass(frozen=True)
class Decision:
    """A decided row of ``decisions.csv``.

    Attributes:
        where: ``decisions.csv:<line>``.
        split: The row's list.
        path: The image (normalised).
        action: ``relabel``, ``remove`` or ``keep``.
        label: The new class index (``relabel``), else None.
        why: The row's note, else its detail.
    """

    where: str
    split: str
    path: str
    action: str
    label: int | None
    why: str


@dataclass(frozen=True)
class CurrentList:
    """A list as it is now: what a decision is checked against.

    Attributes:
        sha256: The file's sha256.
        labels: ``path -> label`` of its samples.
    """

    sha256: str
    labels: dict[str, int]


def read_decisions(path: Path, class_names: tuple[str, ...], lists: dict[str, CurrentList]
                   ) -> tuple[list[Decision], int]:
    """Read and validate a filled-in ``decisions.csv`` against the data set as it is now.

    Args:
        path: The file.
        class_names: The data set's classes.
        lists: The data set's current lists.

    Returns:
        The decided rows, and how many rows were left undecided.

    Raises:
        UserError: When the file is missing, unreadable or lacks a required column.
        FileProblems: Listing every bad row with its line: an unknown action, class, list or path, a list
            that changed since the review, or two decisions for one image.
    """
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: decisions file not found")
    rows = read_csv(path)
    header = [cell.strip() for cell in rows[0]] if rows else []
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise UserError(f"{shown}:1: missing column(s) {missing}; expected the header of a review's {DECISIONS}")
    decided, problems, undecided, first = [], [], 0, {}
    stale: dict[str, list[str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (cell.strip() for cell in row)))
        if len(row) != len(header):
            problems.append(f"{shown}:{number}: {len(row)} fields, the header has {len(header)}")
        elif not cells["action"]:
            undecided += 1
        elif cells["split"] in lists and cells["list_sha256"] != lists[cells["split"]].sha256:
            stale.setdefault(cells["split"], []).append(f"{shown}:{number}")
        else:
            found = _decision(cells, f"{shown}:{number}", class_names, lists)
            earlier = first.get(found.path) if isinstance(found, Decision) else None
            if isinstance(found, str):
                problems.append(found)
            elif earlier is not None and (earlier.action, earlier.label) != (found.action, found.label):
                problems.append(f"{found.where}: {found.path!r} is decided twice, differently (first on "
                                f"{earlier.where})")
            elif earlier is None:  # the same decision twice (an image found twice) counts once
                first[found.path] = found
                decided.append(found)
    problems = [f"{lines[0]}: lists/{split}.txt changed since the review ({len(lines)} decided row(s) are for its "
                f"earlier version; sha256 {lists[split].sha256[:8]} now): these decisions are for another version "
                "of the lists; review again" for split, lines in stale.items()] + problems
    if problems:
        raise FileProblems(problems, "the decisions")
    return decided, undecided


def _decision(cells: dict[str, str], where: str, class_names: tuple[str, ...], lists: dict[str, CurrentList]
              ) -> Decision | str:
    """One decided row, or what is wrong with it."""
    action, label = _action(cells["action"], class_names)
    if action is None:
        return f"{where}: {label}"
    split, path = cells["split"], normalise_path(cells["path"]) if "\\" not in cells["path"] else None
    if split not in lists:
        return f"{where}: list {split!r} is not in the data set (lists: {sorted(lists)})"
    if path is None or path not in lists[split].labels:
        return f"{where}: {cells['path']!r} is not in lists/{split}.txt (a path of the data set, as the review wrote it)"
    why = cells.get("note") or cells.get("detail") or "decided in review"
    return Decision(where, split, path, action, label, why)


def _action(text: str, class_names: tuple[str, ...]) -> tuple[str | None, Any]:
    """``(action, label)``, or ``(None, what is wrong)``."""
    if text in ("remove", "keep"):
        return text, None
    if text.startswith(RELABEL):
        name = text[len(RELABEL):].strip()
        if name in class_names:
            return "relabel", class_names.index(name)
        return None, (f"unknown class {name!r} in {text!r}; the classes are {list(class_names)[:20]}"
                      + (" ..." if len(class_names) > 20 else ""))
    return None, f"unknown action {text!r}; use relabel:<class>, remove or keep (or leave it empty)"


def set_action(path: Path, finding: int, action: str, class_names: tuple[str, ...]) -> None:
    """Set the ``action`` of one finding's row of ``decisions.csv`` (the file rewritten atomically).

    What the studio's review page does for each button; the action is checked as ``prepare-data apply``
    checks it (:func:`_action`), and an empty one makes the row undecided again.

    Args:
        path: The review's ``decisions.csv``.
        finding: The row's number in the ``finding`` column.
        action: ``keep``, ``remove``, ``relabel:<class name>`` or empty.
        class_names: The data set's classes.

    Raises:
        UserError: Naming the file and the finding, for an unknown finding number or action, an unknown class,
            or a file without ``finding`` and ``action`` columns.
    """
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: decisions file not found")
    action = action.strip()
    if action:
        kind, label = _action(action, class_names)
        if kind is None:
            raise UserError(f"{shown}: finding {finding}: {label}")
        action = f"{RELABEL}{class_names[label]}" if kind == "relabel" else kind
    header, *rows = read_csv(path) or [[]]
    names = [cell.strip() for cell in header]
    if "finding" not in names or "action" not in names:
        raise UserError(f"{shown}:1: no 'finding' and 'action' columns; expected the header of a review's {DECISIONS}")
    number, column = names.index("finding"), names.index("action")
    matching = [row for row in rows if len(row) == len(header) and row[number].strip() == str(finding)]
    if not matching:
        raise UserError(f"{shown}: no finding {finding} in it ({len(rows)} rows)")
    for row in matching:
        row[column] = action
    write_csv(path, header, rows)


def suggested_action(kind: str, suggested_label: str) -> str:
    """What a review suggests for a finding: relabel a label issue, remove a duplicate's copy or an unreadable file."""
    if kind == "label_issue" and suggested_label:
        return f"{RELABEL}{suggested_label}"
    return "remove" if kind in ("cross_split_duplicate", "duplicate", "unreadable") else "keep"


def accept_suggestions(path: Path, kinds: tuple[str, ...] = KINDS) -> int:
    """Fill every empty ``action`` of the given kinds with the review's suggestion (:func:`suggested_action`).

    Returns:
        The rows filled.
    """
    header, *rows = read_csv(path)
    column = {name: header.index(name) for name in ("kind", "suggested_label", "action")}
    filled = 0
    for row in rows:
        if row and not row[column["action"]] and row[column["kind"]] in kinds:
            row[column["action"]] = suggested_action(row[column["kind"]], row[column["suggested_label"]])
            filled += 1
    write_csv(path, header, rows)
    return filled

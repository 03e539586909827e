"""Pages of the data loop's review: the reviews, one review's findings with their decisions, applying them.

A review folder (``output/review/<dataset>-<time>/``, written by ``pipenv run review``) holds
``decisions.csv`` and ``review.json`` (their owner: :mod:`datatools.review.decisions`). The
review page shows every finding with its images and sets its ``action`` cell through
:func:`datatools.review.decisions.set_action` (checked as ``prepare-data apply`` checks it);
applying runs :func:`datatools.apply.apply_decisions`, the code of ``prepare-data apply``.
The buttons are plain forms; ``static/review.js`` only adds keyboard shortcuts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from common.errors import UserError
from common.files import read_csv
from common.lists import load_dataset, resolve_image
from common.paths import display_path, output_dir
from common.provenance import moment
from datatools.apply import ApplyResult, apply_decisions
from datatools.review.decisions import (DECISIONS, KINDS, RECORD, RELABEL, ReviewRecord, read_review_record,
                                        set_action, suggested_action)
from studio.render import page
from studio.resolver import url_for_file
from studio.security import state_changing

PAGE_SIZE = 100
"""Findings shown on one page of a review (each with its images)."""

KEYS = (("j, n, ↓", "next finding"), ("k, p, ↑", "previous finding"), ("1", "keep"), ("2", "remove"),
        ("3", "relabel as suggested"), ("4", "relabel as chosen in the finding's list"), ("0", "undecided again"))
"""The review page's keyboard shortcuts (``static/review.js``), as the page lists them."""


def reviews_root() -> Path:
    """Where ``pipenv run review`` writes its folders: ``<output>/review``."""
    return output_dir() / "review"


def review_folder(name: str) -> Path:
    """The review folder ``name``: a plain folder name under :func:`reviews_root`, holding ``decisions.csv``.

    Raises:
        UserError: For a name that is not a plain folder name (``/``, ``\\``, ``..``, a leading dot, a control
            character).
        HTTPException: 404 when there is no such review.
    """
    if (not name or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 or c == "\x7f" for c in name)):
        raise UserError(f"{name!r} is not the name of a review (a folder under {display_path(reviews_root())})")
    root = reviews_root().resolve()
    folder = reviews_root() / name
    if not folder.is_dir() or folder.resolve().parent != root or not (folder / DECISIONS).is_file():
        raise HTTPException(404, f"no review {name!r} in {display_path(reviews_root())}")
    return folder


@dataclass
class ReviewRow:
    """One review in the list.

    Attributes:
        name: Its folder's name.
        dataset: The data set folder it reviewed.
        created: When (ISO 8601).
        counts: Findings per kind.
        decided: Rows of ``decisions.csv`` with an action.
        findings: Rows of ``decisions.csv``.
        problem: Why it could not be read, if it could not.
    """

    name: str
    dataset: str = ""
    created: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    decided: int = 0
    findings: int = 0
    problem: str = ""


def decision_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``decisions.csv`` as ``column -> cell`` (blank rows left out).

    Raises:
        UserError: When the file cannot be read or has no ``finding`` and ``action`` columns.
    """
    header, *rows = read_csv(path) or [[]]
    names = [cell.strip() for cell in header]
    if "finding" not in names or "action" not in names:
        raise UserError(f"{display_path(path)}:1: no 'finding' and 'action' columns; not a review's {DECISIONS}")
    return [dict(zip(names, (cell.strip() for cell in row))) for row in rows if any(cell.strip() for cell in row)]


def review_row(folder: Path) -> ReviewRow:
    """What the list shows of one review folder (a problem reading it is shown, not raised)."""
    row = ReviewRow(folder.name)
    try:
        record = read_review_record(folder)
        rows = decision_rows(folder / DECISIONS)
    except UserError as exc:
        row.problem = str(exc)
        return row
    if record is not None:
        row.dataset, row.created = record.dataset, record.created
        row.counts = {kind: record.counts[kind] for kind in KINDS if record.counts.get(kind)}
    row.findings = len(rows)
    row.decided = sum(1 for cells in rows if cells.get("action"))
    return row


def all_reviews() -> list[ReviewRow]:
    """Every review folder under :func:`reviews_root`, newest first."""
    root = reviews_root()
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
               and (p / DECISIONS).is_file()] if root.is_dir() else []
    rows = [review_row(folder) for folder in folders]
    return sorted(rows, key=lambda row: (moment(row.created), row.name), reverse=True)


async def review_list(request: Request) -> Response:
    """GET /review: every review, newest first, with its counts and how much of it is decided."""
    rows = await asyncio.to_thread(all_reviews)
    return page(request, "review_list.html", rows=rows, root=display_path(reviews_root()), kinds=KINDS)


@dataclass
class Picture:
    """An image of a finding: its path in the data set and the studio's URL for it (None: not served)."""

    caption: str
    path: str
    url: str | None


def picture(root: Path, relative: str, caption: str) -> Picture:
    """An image named relative to the data set folder; served only when it lies under a studio root."""
    resolved = resolve_image(root, relative) if relative else None
    return Picture(caption, relative, url_for_file(resolved) if resolved is not None else None)


def finding_view(cells: dict[str, str], root: Path) -> dict[str, Any]:
    """What the page shows of one row of ``decisions.csv``."""
    pictures = [picture(root, cells.get("path", ""), cells.get("split", "") or "image")]
    if cells.get("duplicate_of"):
        pictures.append(picture(root, cells["duplicate_of"], f"copy in {cells.get('duplicate_split') or '?'}"))
    suggestion = suggested_action(cells.get("kind", ""), cells.get("suggested_label", ""))
    return {"number": cells.get("finding", ""), "kind": cells.get("kind", ""), "split": cells.get("split", ""),
            "path": cells.get("path", ""), "given": cells.get("given_label", ""),
            "suggested": cells.get("suggested_label", ""), "quality": cells.get("label_quality", ""),
            "detail": cells.get("detail", ""), "action": cells.get("action", ""), "note": cells.get("note", ""),
            "suggestion": suggestion, "relabel_suggested": suggestion.startswith(RELABEL),
            "pictures": pictures}


def class_names_of(record: ReviewRecord | None) -> tuple[tuple[str, ...], str]:
    """The reviewed data set's classes (as ``prepare-data apply`` loads them), or ``()`` and why not."""
    if record is None:
        return (), f"no {RECORD} in the review folder: the data set and its classes are unknown"
    try:
        return load_dataset(Path(record.dataset)).class_names, ""
    except UserError as exc:
        return (), str(exc)


def page_of(rows: list[dict[str, str]], finding: str) -> int:
    """The page (from 1) that shows ``finding``."""
    numbers = [cells.get("finding") for cells in rows]
    return numbers.index(finding) // PAGE_SIZE + 1 if finding in numbers else 1


def review_context(name: str, page_number: int) -> dict[str, Any]:
    """Everything :file:`review.html` shows of one page of a review."""
    folder = review_folder(name)
    record = read_review_record(folder)
    rows = decision_rows(folder / DECISIONS)
    classes, problem = class_names_of(record)
    root = Path(record.dataset) if record is not None else folder
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page_number = min(max(1, page_number), pages)
    shown = rows[(page_number - 1) * PAGE_SIZE:page_number * PAGE_SIZE]
    return {"name": folder.name, "record": record, "classes": classes, "problem": problem,
            "findings": [finding_view(cells, root) for cells in shown], "total": len(rows),
            "decided": sum(1 for cells in rows if cells.get("action")), "page_number": page_number, "pages": pages,
            "report": url_for_file(folder / "review.html"), "decisions": url_for_file(folder / DECISIONS),
            "decisions_path": display_path(folder / DECISIONS), "keys": KEYS, "kinds": KINDS}


def page_number_of(request: Request) -> int:
    """The ``page`` query parameter (1 when absent or not a number)."""
    text = request.query_params.get("page", "1")
    return int(text) if text.isascii() and text.isdigit() else 1


async def review_page(request: Request) -> Response:
    """GET /review/<name>: the findings of one review (a page of them), each with its images and its action."""
    context = await asyncio.to_thread(review_context, request.path_params["name"], page_number_of(request))
    return page(request, "review.html", **context)


async def decide(request: Request) -> Response:
    """POST /review/<name>/decide: set one finding's action (``finding``, ``action``); back to the next finding."""
    folder = review_folder(request.path_params["name"])
    form = await request.form(**request.app.state.form_limits)
    number, action = str(form.get("finding", "")).strip(), str(form.get("action", ""))
    if not (number.isascii() and number.isdigit()):
        raise UserError(f"{display_path(folder / DECISIONS)}: {number!r} is not a finding's number")
    classes, problem = class_names_of(read_review_record(folder))
    if action.strip().startswith(RELABEL) and not classes:
        raise UserError(f"cannot relabel: {problem}")
    set_action(folder / DECISIONS, int(number), action, classes)  # in the event loop, not a thread: two clicks
    # at once are written one after the other, never both from the same old file
    rows = decision_rows(folder / DECISIONS)
    numbers = [cells.get("finding", "") for cells in rows]
    position = numbers.index(number) if number in numbers else 0
    following = numbers[min(position + 1, len(numbers) - 1)] if numbers else number
    url = f"/review/{quote(folder.name, safe='')}?page={page_of(rows, following)}#finding-{quote(following)}"
    return RedirectResponse(url, 303)


def applied_view(result: ApplyResult, dry_run: bool) -> dict[str, Any]:
    """What the page shows of :func:`datatools.apply.apply_decisions`'s result."""
    change = result.change
    lists = ([{"split": split, "previous": entry.get("previous"), "version": entry.get("version"),
               "samples": entry.get("samples")} for split, entry in change.lists.items()] if change else
             [{"split": split, "previous": None, "version": None, "samples": samples}
              for split, samples in result.lists.items()])
    return {"dry_run": dry_run, "root": display_path(result.root), "counts": result.counts, "lists": lists,
            "change": change.change if change else None, "time": change.time if change else "",
            "history": display_path(result.root / "lists" / "CHANGES.jsonl")}


async def apply(request: Request) -> Response:
    """POST /review/<name>/apply: apply the decisions to the data set's lists (``mode=check``: a dry run)."""
    folder = review_folder(request.path_params["name"])
    form = await request.form(**request.app.state.form_limits)
    dry_run = str(form.get("mode", "apply")) == "check"
    result = await asyncio.to_thread(apply_decisions, folder / DECISIONS, None, dry_run)
    context = await asyncio.to_thread(review_context, folder.name, 1)
    return page(request, "review.html", applied=applied_view(result, dry_run), **context)


def routes() -> list[Route]:
    """The routes of this module."""
    return [
        Route("/review", review_list),
        Route("/review/{name}", review_page),
        Route("/review/{name}/decide", state_changing(decide), methods=["POST"]),
        Route("/review/{name}/apply", state_changing(apply), methods=["POST"]),
    ]

"""List versions: every change of a data set's list files, kept and explained, and its one owner.

::

    data/<ds>/lists/
        <split>.txt                  the current lists: what every stage reads
        history/<split>.v<N>.txt     every version of each list, the current one included
        CHANGES.jsonl                one JSON object per change, oldest first (:class:`Change`)
    data/<ds>/.lists.lock            held while the lists change

A list's version is a number per list (``train`` v1, v2, ...). Every change becomes a
version: a data set's creation (``created``), a list this module had not seen before
(``first_seen``), a hand edit noticed by its sha256 (``hand_edit``), ``prepare-data
apply`` (``apply``) and ``prepare-data --add-to`` (``add``). Each ``CHANGES.jsonl``
entry records the time, the command, the lists it changed (version, sha256, samples,
the version before), counts, and per image what changed and why.

A change is published whole or not at all: the new ``lists/`` folder (list files,
history and ``CHANGES.jsonl``) is staged beside the current one and the two are
swapped by one atomic exchange of names (Linux ``renameat2(RENAME_EXCHANGE)``), so a
reader, or a process killed at any moment, sees the previous version whole or the
next one whole. Where the exchange is not available, two renames are used and the
rare interruption between them is repaired by the next command that changes lists.

Lists derived from another (a cross-validation fold's ``cv5-s0-v2-f1-train``,
:func:`derived_list_name`) are not versioned: they are written once, never changed,
and name the version of the list they were drawn from.

The stages only read: :func:`list_reference` names the version of a list file by its
sha256 (runs record it in their manifest, models on their card, evaluations in
``evaluation.json``), without writing anything.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import FileProblems, UserError
from common.files import atomic_write_text, file_sha256, parse_json, read_text
from common.locks import exclusive
from common.paths import display_path
from common.provenance import host_name, now, process_alive, stamp
from common.staging import remove_stale_staging

log = logging.getLogger(__name__)

LISTS = "lists"
HISTORY = "history"
CHANGES = "CHANGES.jsonl"
LOCK = ".lists.lock"

KINDS = ("created", "first_seen", "hand_edit", "apply", "add")
"""What made a version (``Change.kind``)."""

DERIVED_LIST = re.compile(r"^cv(?P<folds>\d+)-s(?P<seed>\d+)-v(?P<version>\d+)-f(?P<fold>\d+)-(?P<part>train|holdout)$")
"""The name of a list drawn from the ``train`` list for cross-validation (not versioned)."""

VERSIONED_FILES = (f"{LISTS}/{HISTORY}/", f"{LISTS}/{CHANGES}", LOCK)
"""What this module keeps in a data set folder (relative paths; a folder ends with ``/``)."""

_PREVIOUS = ".lists.previous-"
"""Prefix of the set-aside lists folder in the two-rename fallback (never removed as debris)."""

RENAME_EXCHANGE = 2
"""``renameat2`` flag: swap two paths atomically (Linux 3.15+, glibc 2.28+)."""


class ChangesFileError(FileProblems):
    """``CHANGES.jsonl`` has one or more problems, each with its line."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the list history")


@dataclass(frozen=True)
class ListVersion:
    """One version of one list file.

    Attributes:
        split: The list's name (``train``).
        version: Its number, from 1.
        sha256: The file's sha256.
        samples: Its samples (non-comment lines).
    """

    split: str
    version: int
    sha256: str
    samples: int


@dataclass(frozen=True)
class Change:
    """One line of ``CHANGES.jsonl``.

    Attributes:
        change: Its number in the data set's history, from 1.
        time: When (ISO 8601).
        command: The command line that made it (``prepare-data apply ...``), or what noticed it.
        kind: One of :data:`KINDS`.
        reason: One sentence: why.
        lists: ``split -> {"version", "previous", "sha256", "samples"}`` of every list it changed
            (``previous`` is None for a new list).
        counts: What was done, counted (``relabelled``, ``removed``, ``added``, ``kept`` ...).
        images: Per image: ``{"path", "lists", "change", "from", "to", "why"}`` (``change`` is
            ``relabel``, ``remove`` or ``add``; labels as class names).
    """

    change: int
    time: str
    command: str
    kind: str
    reason: str
    lists: dict[str, dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Change:
        """Validate one parsed line.

        Raises:
            UserError: Naming ``where`` (file and line) and what is wrong.
        """
        types = {"change": int, "time": str, "command": str, "kind": str, "reason": str, "lists": dict,
                 "counts": dict, "images": list}
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object")
        wrong = [key for key, kind in types.items() if not isinstance(data.get(key, kind()), kind)]
        missing = [key for key in ("change", "time", "kind", "lists") if key not in data]
        unknown = sorted(set(data) - set(types))
        if wrong or missing or unknown or data.get("kind") not in KINDS:
            raise UserError(f"{where}: not a list-history entry (missing {missing}, wrong type {wrong}, unknown "
                            f"{unknown}, kind {data.get('kind')!r})")
        for split, entry in data["lists"].items():
            if not (isinstance(entry, dict) and isinstance(entry.get("version"), int)
                    and isinstance(entry.get("sha256"), str)):
                raise UserError(f"{where}: lists.{split}: expected version (a number) and sha256")
        return cls(**{"command": "", "reason": "", **data})


@dataclass(frozen=True)
class History:
    """A data set's list history, as read from ``CHANGES.jsonl``.

    Attributes:
        root: The data set folder.
        changes: Every change, oldest first.
    """

    root: Path
    changes: tuple[Change, ...] = ()

    def current(self) -> dict[str, ListVersion]:
        """The latest recorded version of every list."""
        latest: dict[str, ListVersion] = {}
        for change in self.changes:
            for split, entry in change.lists.items():
                latest[split] = ListVersion(split, entry["version"], entry["sha256"], int(entry.get("samples", 0)))
        return latest

    def version_of(self, split: str, sha256: str) -> int | None:
        """The version of ``split`` whose content has this sha256 (the latest such), or None."""
        found = None
        for change in self.changes:
            entry = change.lists.get(split)
            if entry and entry["sha256"] == sha256:
                found = entry["version"]
        return found

    def file(self, split: str, version: int) -> Path:
        """Where version ``version`` of ``split`` is kept."""
        return history_file(self.root / LISTS, split, version)


@dataclass(frozen=True)
class ListReference:
    """Which version of a list file something used: what runs, models and evaluations record.

    Attributes:
        split: The list's name.
        sha256: The file's sha256.
        version: Its version in the data set's history, or None when the history does not know it.
        derived_from: For a derived list (cross-validation), ``"<list> v<N>"`` it was drawn from.
    """

    split: str
    sha256: str
    version: int | None = None
    derived_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (None fields left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def describe(self) -> str:
        """``train v2``, ``cv5-s0-v2-f1-train (drawn from train v2)`` or ``train (unversioned, sha256 1a2b3c4d)``."""
        if self.version is not None:
            return f"{self.split} v{self.version}"
        if self.derived_from:
            return f"{self.split} (drawn from {self.derived_from})"
        return f"{self.split} (unversioned, sha256 {self.sha256[:8]})"


def history_file(lists: Path, split: str, version: int) -> Path:
    """``<lists>/history/<split>.v<version>.txt``."""
    return Path(lists) / HISTORY / f"{split}.v{version}.txt"


def is_derived(split: str) -> bool:
    """Whether a list is derived from another (a cross-validation fold list), so not versioned."""
    return DERIVED_LIST.match(split) is not None


def derived_list_name(folds: int, seed: int, version: int, fold: int, part: str) -> str:
    """``cv<folds>-s<seed>-v<train version>-f<fold>-<train|holdout>``: a cross-validation fold's list."""
    return f"cv{folds}-s{seed}-v{version}-f{fold}-{part}"


def read_history(root: Path) -> History:
    """A data set's ``lists/CHANGES.jsonl`` (an empty history when there is none).

    Raises:
        ChangesFileError: Listing every line that is not a valid entry, or numbers out of order.
    """
    path = Path(root) / LISTS / CHANGES
    if not path.is_file():
        return History(Path(root))
    shown = display_path(path)
    changes, problems = [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            change = Change.from_dict(parse_json(line, f"{shown}:{number}"), f"{shown}:{number}")
        except UserError as exc:
            problems.append(str(exc))
            continue
        if change.change != len(changes) + 1:
            problems.append(f"{shown}:{number}: change {change.change}, expected {len(changes) + 1}")
        changes.append(change)
    if problems:
        raise ChangesFileError(problems)
    return History(Path(root), tuple(changes))


def list_reference(list_path: Path, sha256: str | None = None) -> ListReference:
    """The version of a list file, by its sha256, read-only (what the stages record).

    A damaged or missing history gives no version rather than an error: the stages
    must keep working with any data set; ``prepare-data history`` says what is wrong.

    Args:
        list_path: The list file, ``<data set>/lists/<split>.txt``.
        sha256: Its sha256, when already computed.
    """
    list_path = Path(list_path)
    split, digest = list_path.stem, sha256 or file_sha256(list_path)
    match = DERIVED_LIST.match(split)
    if match:
        return ListReference(split, digest, derived_from=f"train v{match['version']}")
    try:
        history = read_history(list_path.parent.parent)
    except UserError:
        return ListReference(split, digest)
    return ListReference(split, digest, history.version_of(split, digest))


def version_label(root: Path, split: str, sha256: str | None) -> str:
    """How a report names the list ``split`` of data set ``root`` with content ``sha256`` (see :class:`ListReference`)."""
    if not sha256:
        return f"{split} (no sha256 recorded)"
    match = DERIVED_LIST.match(split)
    if match:
        return ListReference(split, sha256, derived_from=f"train v{match['version']}").describe()
    try:
        version = read_history(root).version_of(split, sha256)
    except UserError:
        version = None
    return ListReference(split, sha256, version).describe()


def current_lists(root: Path) -> dict[str, Path]:
    """The versioned list files of a data set (derived lists left out), by name."""
    folder = Path(root) / LISTS
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    return {path.stem: path for path in files if not is_derived(path.stem)}


def list_entries(text: str) -> dict[str, str]:
    """``path -> label`` of a list file's text, leniently (for differences; :mod:`common.lists` validates)."""
    entries = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            fields = stripped.rsplit(maxsplit=1)
            entries[fields[0]] = fields[-1] if len(fields) == 2 else ""
    return entries


@contextmanager
def lists_lock(root: Path) -> Iterator[None]:
    """Hold the data set's ``.lists.lock`` while its lists change (a second writer is refused, naming the first)."""
    with exclusive(Path(root) / LOCK, f"the lists of {display_path(root)}"):
        yield


def record_created(root: Path, command: str, reason: str) -> Change:
    """Record every list of a data set being written as version 1 (no lock: the folder is still staged).

    Args:
        root: The (staged) data set folder, its list files written.
        command: The command that made it.
        reason: What it was made from.
    """
    lists = Path(root) / LISTS
    entries, images = {}, set()
    for split, path in current_lists(root).items():
        text = read_text(path)
        atomic_write_text(history_file(lists, split, 1), text)
        samples = list_entries(text)
        images |= set(samples)
        entries[split] = {"version": 1, "previous": None, "sha256": file_sha256(path), "samples": len(samples)}
    change = Change(1, now(), command, "created", reason, entries, {"images": len(images)})
    atomic_write_text(lists / CHANGES, _line(change))
    return change


def record_noticed(root: Path, command: str) -> list[Change]:
    """Record lists the history does not know yet, and hand edits noticed by their sha256, as new versions.

    Args:
        root: The data set folder.
        command: What noticed them, for the record.

    Returns:
        The changes recorded (none when the history is up to date).
    """
    with lists_lock(root):
        return _record_noticed(Path(root), command)


def _record_noticed(root: Path, command: str) -> list[Change]:
    _repair(root)
    remove_stale_staging(root)  # a killed writer's staging folder
    history = read_history(root)
    known = history.current()
    first, edited = {}, {}
    for split, path in current_lists(root).items():
        digest = file_sha256(path)
        if split not in known:
            first[split] = (read_text(path), digest)
        elif known[split].sha256 != digest:
            edited[split] = (read_text(path), digest)
    changes = []
    if first:
        changes.append(_change(history, len(changes), command, "first_seen",
                               "lists not recorded before (the history starts here)", first, {}, []))
    if edited:
        images = _differences(history, edited)
        counts = _count(images)
        changes.append(_change(history, len(changes), command, "hand_edit",
                               "edited outside the data tools (noticed by its sha256)", edited, counts, images))
    if changes:
        _publish(root, lambda staged: _write_changes(staged, history, changes, {**first, **edited}))
    return changes


def commit(root: Path, texts: dict[str, str], kind: str, command: str, reason: str, counts: dict[str, int],
           images: list[dict[str, Any]], expected: dict[str, str]) -> Change:
    """Publish new list files as new versions, atomically, with their history entry.

    Hand edits not yet recorded are recorded first (their own versions), then the
    lists in ``expected`` must still have the recorded content: a change prepared
    from lists that changed meanwhile is refused.

    Args:
        root: The data set folder.
        texts: ``split -> the new list file's text``.
        kind: ``apply`` or ``add``.
        command: The command line.
        reason: Why, in one sentence.
        counts: What was done, counted.
        images: Per image, what changed and why (see :class:`Change`).
        expected: ``split -> sha256`` the change was prepared from.

    Raises:
        UserError: When another process changes the lists, or a list changed since it was read.
    """
    root = Path(root)
    with lists_lock(root):
        _record_noticed(root, command)
        lists = current_lists(root)
        moved = [f"{display_path(lists[s]) if s in lists else s}" for s, digest in expected.items()
                 if s not in lists or file_sha256(lists[s]) != digest]
        if moved:
            raise UserError(f"{', '.join(moved)} changed since the change was prepared; nothing was written; "
                            "prepare it again from the current lists")
        history = read_history(root)
        new = {split: (text, _sha_text(text)) for split, text in texts.items()}
        change = _change(history, 0, command, kind, reason, new, counts, images)
        _publish(root, lambda staged: _write_changes(staged, history, [change], new))
        return change


def write_derived(root: Path, texts: dict[str, str]) -> list[str]:
    """Write derived lists (cross-validation folds) that do not exist yet; existing ones must hold the same text.

    Returns:
        The names written now.

    Raises:
        UserError: When a derived list exists with other content (it is never changed).
    """
    root, written = Path(root), []
    with lists_lock(root):
        for name, text in texts.items():
            path = root / LISTS / f"{name}.txt"
            if path.exists():
                if read_text(path) != text:
                    raise UserError(f"{display_path(path)} exists with other content; derived lists never change "
                                    "(remove it only if no run uses it)")
                continue
            atomic_write_text(path, text)
            written.append(name)
    return written


def _sha_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _change(history: History, offset: int, command: str, kind: str, reason: str,
            lists: dict[str, tuple[str, str]], counts: dict[str, int], images: list[dict[str, Any]]) -> Change:
    """A new entry numbered after ``history`` (and ``offset`` entries being added with it)."""
    known = history.current()
    entries = {}
    for split, (text, digest) in lists.items():
        previous = known[split].version if split in known else None
        entries[split] = {"version": (previous or 0) + 1, "previous": previous, "sha256": digest,
                          "samples": len(list_entries(text))}
    return Change(len(history.changes) + offset + 1, now(), command, kind, reason, entries, counts, images)


def _differences(history: History, edited: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Per image, what a hand edit changed (against the kept previous version, when it is there)."""
    known, images = history.current(), []
    for split, (text, _) in edited.items():
        kept = history.file(split, known[split].version)
        if not kept.is_file():
            continue
        before, after = list_entries(read_text(kept)), list_entries(text)
        for path in sorted(set(before) | set(after)):
            if before.get(path) == after.get(path):
                continue
            change = "add" if path not in before else "remove" if path not in after else "relabel"
            images.append({"path": path, "lists": [split], "change": change, "from": before.get(path),
                           "to": after.get(path), "why": "hand edit"})
    return images


def _count(images: list[dict[str, Any]]) -> dict[str, int]:
    names = {"add": "added", "remove": "removed", "relabel": "relabelled"}
    counts: dict[str, int] = {}
    for image in images:
        counts[names[image["change"]]] = counts.get(names[image["change"]], 0) + 1
    return counts


def _line(change: Change) -> str:
    return json.dumps(asdict(change), ensure_ascii=False, separators=(",", ":")) + "\n"


def _write_changes(lists: Path, history: History, changes: list[Change], texts: dict[str, tuple[str, str]]) -> None:
    """Into a staged copy of ``lists/``: the list files, their history copies and the new entries."""
    for change in changes:
        for split, entry in change.lists.items():
            text = texts[split][0]
            atomic_write_text(history_file(lists, split, entry["version"]), text)
            if change.kind in ("apply", "add"):
                atomic_write_text(lists / f"{split}.txt", text)
    old = "".join(_line(change) for change in history.changes)
    atomic_write_text(lists / CHANGES, old + "".join(_line(change) for change in changes))


def _publish(root: Path, write: Callable[[Path], None]) -> None:
    """Stage a copy of ``<root>/lists``, let ``write`` change it, and swap it in atomically.

    A list file someone changed in the old folder between the copy and the swap is not
    lost: the old folder is then kept as ``lists.edited-during-change-<time>`` (and logged).
    """
    _repair(root)
    remove_stale_staging(root)
    lists = root / LISTS
    staged = root / f".{LISTS}.staging-{host_name()}-{os.getpid()}-{stamp()}"
    try:
        before = _snapshot(lists)
        _copy_lists(lists, staged)
        write(staged)
        _swap(staged, lists)
        if _snapshot(staged) != before:  # staged now holds the previous folder
            kept = root / f"{LISTS}.edited-during-change-{stamp()}"
            os.replace(staged, kept)
            log.warning("%s changed while the lists were being replaced; that folder is kept as %s",
                        display_path(lists), display_path(kept))
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # after the swap: the previous lists


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``name -> (modification time, size)`` of the files directly in a lists folder."""
    return {entry.name: (entry.stat().st_mtime_ns, entry.stat().st_size) for entry in folder.iterdir()
            if entry.is_file()}


def _copy_lists(lists: Path, staged: Path) -> None:
    """Copy ``lists/`` into ``staged``; history files (never changed) are hard-linked where possible.

    Raises:
        UserError: When ``lists/`` holds something that is neither a file, a folder nor a link (a named pipe, a
            device, a socket), before anything is copied.
    """
    for entry in lists.rglob("*"):
        kind = entry.lstat().st_mode
        if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind) or stat.S_ISLNK(kind)):
            raise UserError(f"{display_path(entry)}: not a file (a named pipe, a device or a socket); a data set's "
                            "lists folder holds list files: remove it")
    shutil.copytree(lists, staged, symlinks=True, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    if f"{os.sep}{HISTORY}{os.sep}" in source:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def _swap(staged: Path, lists: Path) -> None:
    """Exchange the two folders' names atomically; fall back to two renames where the system cannot."""
    if _exchange(staged, lists):
        return
    aside = lists.with_name(f"{_PREVIOUS}{host_name()}-{os.getpid()}-{stamp()}")
    os.replace(lists, aside)
    os.replace(staged, lists)
    os.replace(aside, staged)  # removed by the caller, like the exchanged folder


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(a, b, RENAME_EXCHANGE)``; False when this system has no such call (then nothing changed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100
    if function(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _repair(root: Path) -> None:
    """After an interrupted two-rename fallback: put back the set-aside lists folder when ``lists/`` is missing,
    else remove set-aside folders of processes that are gone."""
    lists, aside = root / LISTS, sorted(root.glob(f"{_PREVIOUS}*"))
    if aside and not lists.exists():
        os.replace(aside.pop(), lists)
    for folder in aside:
        host, _, pid = folder.name[len(_PREVIOUS):].rsplit("-", 2)[0].rpartition("-")
        if pid.isdigit() and process_alive(host, int(pid)) is False:
            shutil.rmtree(folder, ignore_errors=True)

"""The one publisher: write everything in a hidden staging folder, then publish atomically.

Every command that writes a folder (an evaluation, a data set, an inspection) or a
set of files into a shared folder (a model and its card in ``model/``) does it as::

    with staged(target, exists="refuse") as stage:
        write files into stage.path
    # published here: target appears whole, by renames, or not at all

A failure inside the block removes the staging folder and leaves the target as it
was. Staging folders are named ``.<target>.staging-<host>-<pid>-<time>``; one left
behind by a killed process is recognisable as such, never taken for a result, and
removed by the next :func:`staged` in the same folder once its process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.paths import display_path
from common.provenance import host_name, process_alive, stamp

EXISTS = ("refuse", "replace", "backup")
"""What :func:`staged` does with an existing target: refuse, replace it, or keep it as a backup."""

_DEBRIS = re.compile(r"^\..+\.(?:(?:staging|replaced)-(?P<host>.+)-(?P<pid>\d+)-\d{8}-\d{6}(?:-\d+)?"
                     r"|tmp-(?P<tmp_host>.+)-(?P<tmp_pid>\d+)\.[A-Za-z0-9_]+\.tmp)$")


@dataclass
class Stage:
    """A staging folder in use.

    Attributes:
        path: Write here.
        target: What will be published.
        files: The entries to publish into the target folder (file-set mode); the
            block may change the list once it knows what it wrote.
        backup: Where the replaced target was kept (``exists="backup"``), after publishing.
        cancelled: Set by :meth:`cancel`: nothing is published.
    """

    path: Path
    target: Path
    files: list[str] | None = None
    backup: Path | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """Publish nothing; the staging folder is removed on leaving the block."""
        self.cancelled = True


@contextmanager
def staged(target: Path, exists: str = "refuse", files: Sequence[str] | None = None,
           hint: str = "choose another name or allow replacing it") -> Iterator[Stage]:
    """Stage writes for ``target`` and publish them atomically when the block succeeds.

    Args:
        target: Without ``files``: the folder to create; the staged folder becomes
            it by one rename. With ``files``: an existing (or new) folder into which
            the staged entries named in ``files`` are moved one by one, in that
            order (so a model's card can land before the model).
        exists: ``refuse`` (an existing target, or any of ``files`` already there,
            is an error, checked on entry and again when publishing), ``replace``
            (the old one is removed once the new one is in place) or ``backup`` (the
            old folder is kept as ``<target>.replaced-<time>``; folders only).
        files: The names to publish into ``target``; None publishes a whole folder.
        hint: What the user can do when the target exists, for the error message.

    Yields:
        The :class:`Stage`; write into ``stage.path``.

    Raises:
        UserError: When the target exists and ``exists`` is ``refuse``, a file is in
            the way, or (``replace``, ``backup``) the target is a file.
        OSError: When writing fails; nothing is published, the staging folder is
            removed, and the error names the file as it would have been published.
    """
    if exists not in EXISTS or (files is not None and exists == "backup"):
        raise ValueError(f"exists={exists!r} is not supported here")
    target = Path(target)
    home = target if files is not None else target.parent
    _make_home(home)
    if files is None and exists != "refuse" and os.path.lexists(target) and not target.is_dir():
        raise UserError(f"{display_path(target)}: a file is there, not a folder; nothing was replaced")
    remove_stale_staging(home)
    names = [target.name] if files is None else list(files)
    if exists == "refuse":
        _refuse_existing(home, names, hint, "")
    stage = Stage(path=_new_staging_folder(home, target.name), target=target,
                  files=None if files is None else list(files))
    try:
        yield stage
        if not stage.cancelled:
            names = [target.name] if stage.files is None else stage.files
            if exists == "refuse":
                _refuse_existing(home, names, hint, " (it appeared meanwhile; nothing was overwritten)")
            if stage.files is None:
                stage.backup = _publish_folder(stage.path, target, exists)
            else:
                _publish_files(stage.path, target, names)
    except OSError as exc:  # a full disk, no permission: name the file as it would have been published
        staging = str(stage.path)
        if isinstance(exc.filename, str) and exc.filename.startswith(staging):
            exc.filename = str(target) + exc.filename[len(staging):]
        raise
    finally:
        shutil.rmtree(stage.path, ignore_errors=True)


def refuse_foreign_target(target: Path, marker: str, option: str) -> None:
    """Refuse an existing ``target`` that this command did not write, before replacing it.

    A command that replaces its own output folder (``exists="replace"``) checks
    first that the folder there holds ``marker``, the file it always writes, so a
    mistyped ``--out`` never deletes a data set, a file or someone's work.

    Args:
        target: The output folder about to be replaced.
        marker: The file every output folder of this command holds, e.g. ``report.json``.
        option: The option that named the target, for the message.

    Raises:
        UserError: When ``target`` exists and is not a folder holding ``marker``.
    """
    target = Path(target)
    if not os.path.lexists(target) or (target.is_dir() and not target.is_symlink() and (target / marker).is_file()):
        return
    found = (f"a folder this command did not write (it has no {marker})" if target.is_dir()
             else "a file, not an output folder of this command")
    raise UserError(f"{option} {display_path(target)}: {found}; nothing was replaced; choose another path")


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders, set-aside copies and temporary files of dead processes of this host in ``folder``.

    Returns:
        What was removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _DEBRIS.match(entry.name)
        host, pid = (match["host"] or match["tmp_host"], match["pid"] or match["tmp_pid"]) if match else (None, None)
        if match and process_alive(host, int(pid)) is False:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _make_home(home: Path) -> None:
    """Create the folder the staging folder goes in.

    Raises:
        UserError: When a file is in the way (the folder or one above it is a file).
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UserError(f"{display_path(home)}: cannot create the folder ({exc.strerror}): a file is in the "
                        "way") from None


def _new_staging_folder(home: Path, name: str) -> Path:
    base = f".{name}.staging-{host_name()}-{os.getpid()}-{stamp()}"
    for attempt in range(1, 1000):
        candidate = home / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"{display_path(home)}: no free name for a staging folder")


def _refuse_existing(home: Path, names: list[str], hint: str, suffix: str) -> None:
    taken = [home / name for name in names if os.path.lexists(home / name)]
    if taken:
        raise UserError(f"{display_path(taken[0])} already exists{suffix}; {hint}")


def _set_aside(path: Path) -> Path:
    aside = path.with_name(f".{path.name}.replaced-{host_name()}-{os.getpid()}-{stamp()}")
    os.replace(path, aside)
    return aside


def _publish_folder(staging: Path, target: Path, exists: str) -> Path | None:
    if not os.path.lexists(target):
        os.replace(staging, target)
        return None
    if exists == "backup":
        backup = target.with_name(f"{target.name}.replaced-{stamp()}")
        os.replace(target, backup)
        os.replace(staging, target)
        return backup
    aside = _set_aside(target)
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)
    return None


def _publish_files(staging: Path, folder: Path, names: list[str]) -> None:
    for name in names:
        source, destination = staging / name, folder / name
        if not os.path.lexists(source):
            raise FileNotFoundError(f"staged file {name!r} was never written")
        if destination.is_dir() and not destination.is_symlink():
            aside = _set_aside(destination)
            os.replace(source, destination)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(source, destination)

"""A folder of class folders (torchvision's ``ImageFolder`` layout)::

    photos/
        daisy/001.jpg
        daisy/2024/summer/002.png      nested folders inside a class are fine
        rose/...

The class names are the folder names, sorted; every non-hidden regular file below a
class folder is an image of that class (files Pillow cannot read are left out by the
importer). Each image goes to ``raw/<class>/<path in its class folder>``.

Symbolic links are followed, but no folder and no file is taken twice
(:func:`walk_class_folders`): the class folders' own trees are walked first, then
the folders their links lead to, each folder and file identified by its device and
inode; a link back into the tree (a loop), a second link to a folder already walked
and a second name of a file already found are left out, and so is anything that is
not a regular file (a FIFO named ``x.png`` would block a reader for ever). The walk
stops with an error after :data:`common.limits.WALK_SECONDS`.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.limits import WALK_SECONDS
from common.lists import name_problem
from common.paths import display_path
from datatools.readers import register_reader
from datatools.readers.base import LabelledImage, LeftOut, Reader, SourceImages


@register_reader("folder")
class ClassFolders(Reader):
    """One subfolder of images per class."""

    option_help = "a folder holding one subfolder of images per class (nested folders allowed)"

    def read(self) -> SourceImages:
        """The class folders' images.

        Raises:
            UserError: When the source is not a folder, has fewer than two class folders, or a
                folder name cannot be a class name.
        """
        source = self.source
        if not source.is_dir():
            found = "a file, not a folder" if source.exists() else "no such folder"
            raise UserError(f"--from-folder {display_path(source)}: {found} (expected one subfolder of images per "
                            "class)")
        classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(classes) < 2:
            raise UserError(f"{display_path(source)}: found {len(classes)} class folder(s); a classifier needs at "
                            "least two (one subfolder of images per class)")
        bad = {name: problem for name in classes if (problem := name_problem(name))}
        if bad:
            listed = "; ".join(f"{name!r}: {problem}" for name, problem in bad.items())
            raise UserError(f"{display_path(source)}: folder name(s) that cannot be class names ({listed}); rename "
                            "them")
        left_out = [LeftOut(p.name, "not inside a class folder") for p in sorted(source.iterdir())
                    if p.is_file() and not p.name.startswith(".")]
        images = []
        found, skipped = walk_class_folders(source, classes)
        left_out += skipped
        for name in classes:
            for path in found[name]:
                relative = path.relative_to(source / name).as_posix()
                shown = f"{name}/{relative}"
                problem = name_problem(relative)
                if problem:
                    left_out.append(LeftOut(shown, f"its name cannot go in a list file ({problem}); rename it"))
                    continue
                images.append(LabelledImage(path, name, shown, where=shown))
        return SourceImages(images, classes, left_out, f"folder {display_path(source)}")


@dataclass
class _Walk:
    """The state of :func:`walk_class_folders`.

    Attributes:
        source: The source folder (paths are shown relative to it).
        seconds: How long the walk may take.
        deadline: ``time.monotonic()`` value at which the walk gives up.
        seen: ``(device, inode)`` of every folder and file taken.
        found: Files per class.
        skipped: What was left out, and why.
        linked: Folders reached through a symbolic link, ``(class, path)``, walked after the real trees.
    """

    source: Path
    seconds: float
    deadline: float
    seen: set[tuple[int, int]] = field(default_factory=set)
    found: dict[str, list[Path]] = field(default_factory=dict)
    skipped: list[LeftOut] = field(default_factory=list)
    linked: deque[tuple[str, Path]] = field(default_factory=deque)


def walk_class_folders(source: Path, classes: list[str], seconds: float = WALK_SECONDS
                       ) -> tuple[dict[str, list[Path]], list[LeftOut]]:
    """Every non-hidden regular file below each class folder, each folder and file taken once.

    The real trees of all class folders are walked first (breadth first, names sorted),
    then the folders symbolic links lead to, in the order they were met; a folder or
    file already taken (by device and inode) is left out with the reason, and so is
    anything that is not a regular file.

    Args:
        source: The folder of class folders.
        classes: The class folder names.
        seconds: How long the walk may take.

    Returns:
        ``(files per class, sorted by path; what was left out)``.

    Raises:
        UserError: When the walk takes longer than ``seconds``.
    """
    walk = _Walk(Path(source), seconds, time.monotonic() + seconds, found={name: [] for name in classes})
    for name in classes:
        _walk_tree(walk, name, Path(source) / name)
    while walk.linked:
        name, folder = walk.linked.popleft()
        _walk_tree(walk, name, folder)
    return {name: sorted(files) for name, files in walk.found.items()}, walk.skipped


def _walk_tree(walk: _Walk, name: str, top: Path) -> None:
    """Walk ``top`` without following links; links to folders are queued in ``walk.linked``."""
    pending = deque([top])
    while pending:
        folder = pending.popleft()
        if time.monotonic() > walk.deadline:
            taken = sum(map(len, walk.found.values()))
            raise UserError(f"{display_path(walk.source)}: stopped after {walk.seconds:g} s of walking the folders "
                            f"({taken} files so far); import a smaller part of it, or copy it to a local disk first")
        if not _take(walk, folder, "a folder already walked (a symbolic link loop, or a second link to it)"):
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            walk.skipped.append(LeftOut(_shown(walk, folder), f"cannot list the folder ({exc.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            kind = _kind(entry)
            if kind == "folder":
                (walk.linked.append((name, path)) if entry.is_symlink() else pending.append(path))
            elif kind == "file" and _take(walk, path, "the same file as one already taken (a link or a hard link)"):
                walk.found[name].append(path)
            elif kind not in ("file", "folder"):
                walk.skipped.append(LeftOut(_shown(walk, path), f"not a regular file ({kind})"))


def _kind(entry: os.DirEntry) -> str:
    """``folder``, ``file``, or what else the entry is (links followed)."""
    try:
        status = entry.stat()
    except OSError:
        return "a broken symbolic link" if entry.is_symlink() else "unreadable"
    if stat.S_ISDIR(status.st_mode):
        return "folder"
    if stat.S_ISREG(status.st_mode):
        return "file"
    return "a FIFO" if stat.S_ISFIFO(status.st_mode) else "a socket" if stat.S_ISSOCK(status.st_mode) else "a device"


def _take(walk: _Walk, path: Path, reason: str) -> bool:
    """Whether ``path`` (links followed) is new to the walk; records it, or records why it is left out."""
    try:
        status = path.stat()
    except OSError as exc:
        walk.skipped.append(LeftOut(_shown(walk, path), f"cannot read it ({exc.strerror})"))
        return False
    identity = (status.st_dev, status.st_ino)
    if identity in walk.seen:
        walk.skipped.append(LeftOut(_shown(walk, path), reason))
        return False
    walk.seen.add(identity)
    return True


def _shown(walk: _Walk, path: Path) -> str:
    """A path as the import's report shows it: relative to the source folder."""
    try:
        return path.relative_to(walk.source).as_posix()
    except ValueError:
        return str(path)

"""The images to predict: gathered from folders, globs, files, list files and files of paths.

Rules (docs/prediction.md, "Inputs"):

- a **folder** is walked recursively, following symbolic links; hidden files and
  folders (``.name``) are skipped, and so is every file whose extension Pillow does not
  open (a ``notes.txt``, an ``.xmp`` sidecar), counted in the log. A symbolic link
  that leads back into a folder being walked (a directory loop) is an error;
- a **glob** (``photos/**/*.jpg``; ``**`` crosses folders) takes the image files it
  matches (by extension, as in folders) and walks the folders it matches; one that
  matches nothing is an error;
- a **file** named on the command line is taken as it is, whatever its extension;
- a **list file** (``--list``): ``<path> [<label>]`` per line, the label ignored;
  paths relative to the data set folder when the file lives in ``<data set>/lists/``,
  else to the file's own folder; ``#`` comments and blank lines skipped;
- a **file of paths** (``--paths``): one path per line, relative to the file's folder
  or absolute; ``#`` comments and blank lines skipped.

A listed file that does not exist is an error naming the file and line (every such
line at once). The result is deduplicated (a file named twice is predicted once) and
sorted by its absolute path (code point order): that order is the rows' order, and
``--shard i/n`` takes every n-th path of it, starting at the i-th (0-based).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from common.errors import FileProblems, UserError
from common.files import read_text
from common.lists import parse_label
from common.paths import display_path

log = logging.getLogger(__name__)

GLOB_CHARACTERS = frozenset("*?[")
"""Characters that make an argument a glob pattern (when no file of that name exists)."""


class InputFileError(FileProblems):
    """List files or files of paths name files that do not exist, each with file and line."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the input files")


@dataclass
class Inputs:
    """The images to predict, in their one order.

    Attributes:
        paths: Absolute paths, deduplicated, sorted.
        given: The arguments they were gathered from (absolute), as recorded.
        origins: For paths from a list file or file of paths: ``<file>:<line>``.
    """

    paths: list[str]
    given: list[str]
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The digest of the whole sorted list (before sharding): what a shard, a resume and a merge compare."""
        return inputs_digest(self.paths)

    def shard(self, index: int, count: int) -> list[str]:
        """Shard ``index`` of ``count`` (0-based): every ``count``-th path, from the ``index``-th."""
        return self.paths[index::count]

    def where(self, path: str) -> str:
        """How to name an input in a message: its path, and the list line that named it."""
        origin = self.origins.get(path)
        return f"{path} (listed at {origin})" if origin else path


def inputs_digest(paths: Iterable[str]) -> str:
    """sha256 of sorted absolute paths joined by NUL bytes (no path holds one)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode("utf-8") + b"\0")
    return digest.hexdigest()


def gather_inputs(arguments: Sequence[str | os.PathLike], lists: Sequence[Path] = (),
                  path_files: Sequence[Path] = ()) -> Inputs:
    """Every image the arguments name, deduplicated and sorted (see the module docstring).

    Args:
        arguments: Folders, image files and glob patterns.
        lists: List files (``<path> [<label>]`` per line).
        path_files: Files of paths (one per line).

    Raises:
        UserError: When nothing is named, a folder holds no image, a glob matches
            nothing, a named file or folder does not exist, or a folder loops.
        InputFileError: Naming every line of a list file or file of paths whose
            file does not exist.
    """
    if not arguments and not lists and not path_files:
        raise UserError("name the images to predict: folders, image files or globs, --list FILE or --paths FILE "
                        "(pipenv run predict --help)")
    arguments = [os.fspath(argument) for argument in arguments]
    found: set[str] = set()
    origins: dict[str, str] = {}
    for argument in arguments:
        found |= _argument_files(argument)
    problems: list[str] = []
    for list_file, labelled in [*((Path(f), True) for f in lists), *((Path(f), False) for f in path_files)]:
        for path, origin in _listed_files(list_file, labelled, problems):
            found.add(path)
            origins.setdefault(path, origin)
    if problems:
        raise InputFileError(problems)
    unnamable = sorted(path for path in found if not _is_utf8(path))
    if unnamable:
        log.warning("left out %d file(s) whose names are not UTF-8, so no output file could name them (e.g. %r); "
                    "rename them", len(unnamable), unnamable[0])
        found -= set(unnamable)
    if not found:
        raise UserError("none of the files named can be predicted (see the warnings above)")
    given = [*(_absolute(a) for a in arguments), *(f"--list {_absolute(str(f))}" for f in lists),
             *(f"--paths {_absolute(str(f))}" for f in path_files)]
    return Inputs(sorted(found), given, origins)


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a name of undecodable bytes, held as surrogates
        return False
    return True


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _argument_files(argument: str) -> set[str]:
    """The image files one command-line argument names: a folder's, a file, or a glob's matches."""
    path = Path(os.path.expanduser(argument))
    if path.is_dir():
        return walk_images(path)
    if path.is_file():
        return {_absolute(str(path))}
    if not GLOB_CHARACTERS & set(argument):
        raise UserError(f"{argument}: no such file or folder (name a folder, an image file or a glob)")
    matches = glob_paths(os.path.expanduser(argument))
    files = {_absolute(m) for m in matches if Path(m).is_file() and is_image_name(m)}
    if not files:
        what = f"matches {len(matches)} path(s), none of them an image file" if matches else "matches nothing"
        raise UserError(f"{argument}: the glob {what} (quote it so that the shell leaves it to predict; `**` "
                        "crosses folders)")
    return files


def glob_paths(pattern: str) -> list[str]:
    """The files a glob names (``**`` crosses folders), each real file once, below any folder it matches too.

    Unlike :func:`glob.glob`, which follows folder links without end, the walk enters each real folder (device
    and inode) once: a link back to a folder above it, or a second link to a folder already walked, is passed
    over, so a loop neither runs for ever nor names one file under many paths. Hidden entries match only a
    pattern part that starts with ``.``, as in :mod:`glob`.
    """
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part)), len(parts))
    root, rest = Path(*parts[:fixed]) if fixed else Path("."), parts[fixed:]
    if not root.is_dir():
        return []
    found: list[str] = []
    seen_folders, seen_files = {_identity(root)}, set()
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while stack:
        folder, relative = stack.pop()
        for entry in sorted(_entries(folder), key=lambda e: e.name, reverse=True):
            path, names = Path(entry.path), (*relative, entry.name)
            try:
                identity = _identity(path)
            except OSError:  # a dangling link
                continue
            if entry.is_dir(follow_symlinks=True):
                if identity not in seen_folders:
                    seen_folders.add(identity)
                    stack.append((path, names))
            elif identity not in seen_files and _glob_match(names, rest, inside=True):
                seen_files.add(identity)
                found.append(str(path))
    return sorted(found)


def _glob_match(names: tuple[str, ...], pattern: tuple[str, ...], inside: bool = False) -> bool:
    """Whether the path parts ``names`` match the pattern's parts (``inside``: or lie below a folder that does)."""
    if not pattern:
        return not names or (inside and not any(name.startswith(".") for name in names))
    if pattern[0] == "**":
        return any(_glob_match(names[i:], pattern[1:], inside) for i in range(len(names) + 1)
                   if not any(name.startswith(".") for name in names[:i]))
    return (bool(names) and (not names[0].startswith(".") or pattern[0].startswith("."))
            and fnmatch.fnmatchcase(names[0], pattern[0]) and _glob_match(names[1:], pattern[1:], inside))


def walk_images(folder: Path, required: bool = True) -> set[str]:
    """The image files below ``folder``, recursively (links followed, hidden entries and other files skipped).

    Args:
        folder: The folder.
        required: Refuse a folder without any image file.

    Raises:
        UserError: When a symbolic link leads back into a folder being walked (a loop),
            or (``required``) the folder holds no image file.
    """
    root = Path(_absolute(str(folder)))
    found: set[str] = set()
    ignored: list[str] = []
    stack = [(root, (_identity(root),))]
    while stack:
        current, ancestors = stack.pop()
        for entry in _entries(current):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=True):
                identity = _identity(Path(entry.path))
                if identity in ancestors:
                    raise UserError(f"{display_path(Path(entry.path))}: a directory loop: this link leads back to a "
                                    f"folder above it ({display_path(Path(os.path.realpath(entry.path)))}); remove "
                                    "the link, or name the folders to predict without it")
                stack.append((Path(entry.path), (*ancestors, identity)))
            elif entry.is_file(follow_symlinks=True) and is_image_name(entry.name):
                found.add(entry.path)
            elif entry.is_file(follow_symlinks=True):
                ignored.append(entry.path)
    if ignored:
        log.info("%s: left out %d file(s) that are not images by their extension (e.g. %s); name a file to predict "
                 "it anyway", display_path(root), len(ignored), Path(sorted(ignored)[0]).name)
    if not found and required:
        raise UserError(f"{display_path(root)}: no image files in this folder or below it (looked for "
                        f"{', '.join(sorted(_image_extensions())[:8])}, ...; hidden files are skipped)")
    return found


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise UserError(f"{display_path(folder)}: cannot read the folder ({exc.strerror})") from None


def _identity(folder: Path) -> tuple[int, int]:
    info = folder.stat()
    return info.st_dev, info.st_ino


@cache
def _image_extensions() -> frozenset[str]:
    """Extensions of the formats Pillow can open (lower case, with the dot)."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN)


def is_image_name(name: str) -> bool:
    """Whether a file name (or path) has the extension of a format Pillow opens.

    The extension as ``os.path.splitext`` finds it (leading dots of the name are not
    one), at half its cost: folders of 100,000 files are walked name by name.
    """
    base = name[max(name.rfind(os.sep), name.rfind(os.altsep or os.sep)) + 1:]
    dot = base.rfind(".")
    return dot > 0 and base[:dot].strip(".") != "" and base[dot:].lower() in _image_extensions()


def _listed_files(list_file: Path, labelled: bool, problems: list[str]) -> list[tuple[str, str]]:
    """``(absolute path, "<file>:<line>")`` per entry of a list file or a file of paths.

    Entries naming a missing file go to ``problems``.
    """
    shown = display_path(list_file)
    if not list_file.is_file():
        raise UserError(f"{'--list' if labelled else '--paths'} {shown}: no such file")
    base = list_file.parent.parent if labelled and list_file.parent.name == "lists" else list_file.parent
    entries = []
    for number, raw in enumerate(read_text(list_file).splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        candidate = _resolve(base, text)
        if labelled and not candidate.is_file():
            fields = text.rsplit(maxsplit=1)
            if len(fields) == 2 and parse_label(fields[1]) is not None:
                candidate = _resolve(base, fields[0])  # '<path> <label>': the label is ignored
        if candidate.is_file():
            entries.append((_absolute(str(candidate)), f"{shown}:{number}"))
        else:
            problems.append(f"{shown}:{number}: no such file: {display_path(candidate)}")
    if not entries and not problems:
        problems.append(f"{shown}: names no file (it is empty or holds only comments)")
    return entries


def _resolve(base: Path, text: str) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path

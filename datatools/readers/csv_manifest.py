"""A CSV or TSV manifest: one row per image with its class name, as labelling tools and competitions export.

::

    file,label,split            the header (any order; other columns are ignored)
    images/001.jpg,daisy,train
    images/002.jpg,rose,
    /data/extra/003.png,daisy,test

- ``file`` (or ``path``): the image, relative to the manifest's folder, or absolute.
- ``label`` (or ``class``): the class name. Classes are the distinct names, sorted.
- ``split`` (optional): ``train``, ``val`` or ``test`` puts the image there; an empty
  cell lets the importer's stratified, seeded rule assign it (``dev`` is always drawn
  from ``train``).

The delimiter is a tab for ``.tsv`` and ``.tab`` files, else a comma
(``--reader-option delimiter=';'`` chooses another). Every bad row is reported at
once, with its line: a missing file, an empty label or path, an unknown split, a
path listed twice, a row with the wrong number of fields. An image goes to
``raw/<path relative to the manifest's folder>``, or ``raw/external/<its absolute
path>`` when it lies outside that folder.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from common.errors import FileProblems, UserError
from common.files import read_csv
from common.lists import SPLITS, name_problem
from common.paths import display_path
from datatools.readers import register_reader
from datatools.readers.base import LabelledImage, Reader, SourceImages

PATH_COLUMNS = ("file", "path")
"""Header names of the image column (the first present is used)."""

LABEL_COLUMNS = ("label", "class")
"""Header names of the class column."""

ASSIGNABLE_SPLITS = tuple(s for s in SPLITS if s != "dev")
"""Splits a manifest may name; ``dev`` is drawn from ``train``."""


@register_reader("csv")
class CsvManifest(Reader):
    """A CSV/TSV file of ``file,label[,split]`` rows.

    Args:
        source: The manifest.
        delimiter: The field separator; default: a tab for ``.tsv``/``.tab``, else a comma.
    """

    option_help = "a CSV/TSV manifest with a header: file,label[,split] (paths relative to it, or absolute)"

    def __init__(self, source: Path, delimiter: str | None = None):
        super().__init__(source)
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise UserError(f"--reader-option delimiter={delimiter!r}: one character, e.g. delimiter=';'")
        self.delimiter = delimiter or ("\t" if self.source.suffix.lower() in (".tsv", ".tab") else ",")

    def read(self) -> SourceImages:
        """The manifest's rows as images.

        Raises:
            UserError: When the manifest is missing, unreadable or has no usable header.
            FileProblems: Listing every bad row with its line.
        """
        shown = display_path(self.source)
        if not self.source.is_file():
            raise UserError(f"--from-csv {shown}: no such file")
        rows = read_csv(self.source, self.delimiter)
        header = [cell.strip().lower() for cell in rows[0]] if rows else []
        columns = self._columns(header, shown)
        images, problems, first_seen = [], [], {}
        same: dict[object, int] = {}  # raw names and real files (device, inode) already taken, with their lines
        for number, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            found = self._image(row, number, columns, len(header), first_seen)
            if not isinstance(found, str):
                found = _taken(found, number, same) or found
            if isinstance(found, str):
                problems.append(f"{shown}:{number}: {found}")
            else:
                images.append(found)
        if not images and not problems:
            problems.append(f"{shown}: no rows after the header")
        if len({image.split is None for image in images}) > 1:
            problems += [f"{image.where}: empty split; the manifest names the split of other rows, so name it on "
                         "every row (or of none)" for image in images if image.split is None]
        if problems:
            raise FileProblems(problems, "the manifest")
        classes = sorted({image.label for image in images})
        return SourceImages(images, classes, [], f"manifest {shown}")

    @staticmethod
    def _columns(header: list[str], shown: str) -> dict[str, int | None]:
        """Positions of the path, label and (optional) split columns.

        Raises:
            UserError: When the path or label column is missing.
        """
        def first(names: tuple[str, ...]) -> int | None:
            return next((header.index(n) for n in names if n in header), None)

        columns = {"path": first(PATH_COLUMNS), "label": first(LABEL_COLUMNS), "split": first(("split",))}
        if columns["path"] is None or columns["label"] is None:
            raise UserError(f"{shown}:1: expected a header naming the image column ({' or '.join(PATH_COLUMNS)}) "
                            f"and the class column ({' or '.join(LABEL_COLUMNS)}), optionally 'split'; got {header}")
        return columns

    def _image(self, row: list[str], number: int, columns: dict[str, int | None], width: int,
               first_seen: dict[Path, int]) -> LabelledImage | str:
        """One row as an image, or what is wrong with it."""
        if len(row) != width:
            return f"{len(row)} fields, the header has {width}"
        text, label = row[columns["path"]].strip(), row[columns["label"]].strip()
        split = row[columns["split"]].strip() if columns["split"] is not None else ""
        if not text:
            return "empty file path"
        if not label:
            return f"empty label for {text!r}"
        problem = name_problem(label)
        if problem:
            return f"label {label!r} cannot be a class name ({problem})"
        if split and split not in ASSIGNABLE_SPLITS:
            return f"unknown split {split!r}; use one of {list(ASSIGNABLE_SPLITS)} or leave it empty"
        if "\\" in text:
            return f"path {text!r} uses '\\'; separate folders with '/'"
        path = Path(text) if Path(text).is_absolute() else self.source.parent / text
        key = Path(os_path_normal(path))
        if key in first_seen:
            return f"{text!r} is listed twice (first on line {first_seen[key]})"
        first_seen[key] = number
        if not path.is_file():
            return f"image not found: {display_path(path)}"
        name = self._raw_name(key)
        problem = name_problem(name)
        if problem:
            return f"path {text!r} cannot go in a list file ({problem}); rename the file"
        return LabelledImage(path, label, name, split or None, f"{display_path(self.source)}:{number}")

    def _raw_name(self, path: Path) -> str:
        """Where an image goes under ``raw/``: its path relative to the manifest's folder, else ``external/...``."""
        folder = Path(os_path_normal(self.source.parent))
        if path.is_relative_to(folder):
            return path.relative_to(folder).as_posix()
        return (PurePosixPath("external") / path.relative_to(path.anchor).as_posix()).as_posix()


def _taken(image: LabelledImage, number: int, same: dict[object, int]) -> str | None:
    """What is wrong when ``image`` is a file, or goes to a ``raw/`` name, that an earlier row already has."""
    info = image.path.stat()
    real = (info.st_dev, info.st_ino)
    if real in same:
        return (f"{image.path} is the image of line {same[real]} again (a link or another name of the same file): "
                "one image, one row")
    if ("name", image.name) in same:
        return (f"{image.path} would be imported as raw/{image.name}, as the different image of line "
                f"{same['name', image.name]}; move one of them")
    same[real] = same["name", image.name] = number
    return None


def os_path_normal(path: Path) -> str:
    """An absolute, normalised path (``..`` and ``.`` resolved in the text; links are not followed)."""
    return os.path.normpath(os.path.abspath(path))

"""A list file of ``<image path> <class index>`` lines: the format of ``lists/<split>.txt``, with paths anywhere.

::

    # images to label, most uncertain first (predict --rank uncertainty writes this)
    /home/me/unlabelled/img_0042.jpg 3
    batch2/img_0007.png 0

``to_label.txt`` from ``pipenv run predict --rank uncertainty`` is such a file: the
class index on each line is the model's suggestion; correct the ones that are wrong
(the index is the line number, from 0, of the class in the target data set's
``classes.txt``), delete lines you cannot label, and add the file to the data set::

    pipenv run prepare-data --from-list to_label.txt --add-to flowers

Class indices mean something only against a data set's classes, so this reader is used
with ``--add-to`` (which gives it the target's classes). Paths are absolute or relative
to the list file's folder; the label is the last field, so paths may contain spaces;
blank lines and ``#`` comments are ignored. Every bad line is reported at once, with
its line: no label, a label that is not a class index, a missing file, a path listed
twice, a name that cannot go in a list file. An image goes to ``raw/<path relative to
the list file's folder>``, or ``raw/external/<its absolute path>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from common.errors import FileProblems, UserError
from common.files import read_text
from common.lists import name_problem, parse_label
from common.paths import display_path
from datatools.readers import register_reader
from datatools.readers.base import LabelledImage, Reader, SourceImages
from datatools.readers.csv_manifest import os_path_normal


@register_reader("list")
class ListFile(Reader):
    """A file of ``<image path> <class index>`` lines (``#`` comments), read against a data set's classes.

    Args:
        source: The list file.
        classes: The target data set's class names (given by ``--add-to``).
    """

    option_help = ("a list file of '<image path> <class index>' lines ('#' comments), e.g. to_label.txt from "
                   "predict --rank uncertainty; with --add-to (indices are read against its classes.txt)")

    def __init__(self, source: Path, classes: Sequence[str] | None = None):
        super().__init__(source)
        self.classes = list(classes) if classes is not None else None

    def read(self) -> SourceImages:
        """The listed images, with their class names.

        Raises:
            UserError: When the file is missing, or there are no classes to read the indices against.
            FileProblems: Listing every bad line.
        """
        shown = display_path(self.source)
        if self.classes is None:
            raise UserError(f"--from-list {shown}: its labels are class indices, which mean something only against a "
                            "data set's classes.txt; use it with --add-to <data set>")
        if not self.source.is_file():
            raise UserError(f"--from-list {shown}: no such file")
        images, problems, first_seen = [], [], {}
        for number, raw in enumerate(read_text(self.source).splitlines(), start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            found = self._image(text, f"{shown}:{number}", number, first_seen)
            (problems if isinstance(found, str) else images).append(found)
        if not images and not problems:
            problems.append(f"{shown}: no images (the file is empty or holds only comments)")
        if problems:
            raise FileProblems(problems, "the list of images to add")
        return SourceImages(images, sorted({image.label for image in images}, key=self.classes.index),
                            description=f"list {shown}")

    def _image(self, text: str, where: str, number: int, first_seen: dict[Path, int]) -> LabelledImage | str:
        """One line as an image, or what is wrong with it."""
        fields = text.rsplit(maxsplit=1)
        if len(fields) != 2:
            return f"{where}: expected '<image path> <class index>', got {text!r}"
        path = Path(fields[0]) if Path(fields[0]).is_absolute() else self.source.parent / fields[0]
        key = Path(os_path_normal(path))
        if key in first_seen:
            return f"{where}: {fields[0]!r} is listed twice (first on line {first_seen[key]})"
        first_seen[key] = number
        label = parse_label(fields[1])
        if label is None or label >= len(self.classes):
            return (f"{where}: label {fields[1]!r} is not a class index 0..{len(self.classes) - 1} (the line of the "
                    "class in the data set's classes.txt, from 0)")
        if not path.is_file():
            return f"{where}: image not found: {display_path(path)}"
        folder = Path(os_path_normal(self.source.parent))
        name = (key.relative_to(folder).as_posix() if key.is_relative_to(folder)
                else (PurePosixPath("external") / key.relative_to(key.anchor).as_posix()).as_posix())
        problem = name_problem(name)
        if problem:
            return f"{where}: path {fields[0]!r} cannot go in a list file ({problem}); rename the file"
        return LabelledImage(path, self.classes[label], name, where=where)

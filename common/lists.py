"""Data sets on disk: ``classes.txt`` and list files, read and validated.

A data set is a folder (``data/<ds>/``) holding::

    classes.txt         one class name per line; line number (from 0) = label
    lists/<split>.txt   one sample per line: <image path relative to the folder> <label>
    raw/...             the images (any layout; the lists point into it)

In list files, blank lines and lines starting with ``#`` are ignored; the label is
the last whitespace-separated field, so image paths may contain spaces. Paths use
``/`` and may not leave the data set folder. Labels are ASCII digits. Both files are
UTF-8; a leading byte-order mark (BOM, as Windows editors write) is stripped.

Every problem found in a list file is reported at once, each with file and line.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from common.errors import FileProblems, UserError
from common.files import read_json, read_text, write_json
from common.limits import MAX_CLASSES
from common.paths import data_dir, display_path

SPLITS: tuple[str, ...] = ("train", "val", "test", "dev")
"""The conventional splits; ``dev`` is a small subset for quick debug runs."""

PREPARE_RECORD = "prepare.json"
"""The file in a data set folder that records how the data tools made it (:class:`PrepareRecord`)."""

PREPARE_VERSION = 1
"""The ``prepare.json`` layout this code writes and reads."""

LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
"""Every character Python's ``str.splitlines`` breaks a line at: none may be part of a name."""

_LINE_BREAK = re.compile("[" + re.escape("".join(sorted(LINE_BREAKS))) + "]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode's category Cc, exactly (``tests/common/test_lists.py`` checks it against ``unicodedata``)."""


class ListFileError(FileProblems):
    """A list file or ``classes.txt`` has one or more problems.

    Attributes:
        problems: One ``"<file>:<line>: <what is wrong>"`` string per problem.
    """

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the data set files")


@dataclass(frozen=True)
class Sample:
    """One line of a list file.

    Attributes:
        path: Image path relative to the data set folder, normalised, ``/``-separated.
        label: Class index into the data set's class names.
        source: The list file, as shown to the user.
        line: 1-based line number in that file.
    """

    path: str
    label: int
    source: str
    line: int


@dataclass(frozen=True)
class Dataset:
    """A data set folder and its class names.

    Attributes:
        root: The data set folder (``data/<ds>``).
        class_names: Names from ``classes.txt``; index = label.
    """

    root: Path
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def list_path(self, split: str) -> Path:
        """The list file of a split, ``<root>/lists/<split>.txt``."""
        return self.root / "lists" / f"{split}.txt"

    def image_path(self, sample: Sample) -> Path:
        """The image file of a sample."""
        return self.root / sample.path


def load_dataset(root: Path) -> Dataset:
    """Open a data set folder and read its ``classes.txt``.

    Args:
        root: The data set folder.

    Raises:
        UserError: When the folder or ``classes.txt`` is missing.
        ListFileError: When ``classes.txt`` has blank or duplicate names.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"{display_path(root)}: data set folder not found "
            "(run `pipenv run prepare-data` for the bundled digits, or see data/README.md)"
        )
    classes_file = root / "classes.txt"
    if not classes_file.is_file():
        raise UserError(
            f"{display_path(classes_file)}: missing; write one class name per line "
            "(the line number, from 0, is the label)"
        )
    shown = display_path(classes_file)
    lines = text_lines(read_text(classes_file))
    while lines and not lines[-1].strip():
        lines.pop()
    problems = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        name = raw.strip()
        problem = (line_break_in(raw) or name_problem(name)) if name else None
        if not name:
            problems.append(f"{shown}:{number}: blank class name (every line up to the last is a class)")
        elif problem:
            problems.append(f"{shown}:{number}: class name {name!r} holds {problem}; rename the class")
        elif name in first_seen:
            problems.append(f"{shown}:{number}: class {name!r} repeats line {first_seen[name]}")
        else:
            first_seen[name] = number
    if not lines:
        problems.append(f"{shown}: no class names; write one per line")
    if len(lines) > MAX_CLASSES:
        problems.append(f"{shown}: {len(lines)} classes; this project handles at most {MAX_CLASSES} "
                        "(common.limits.MAX_CLASSES: its confusion matrices hold classes x classes counts)")
    if problems:
        raise ListFileError(problems)
    return Dataset(root=root, class_names=tuple(line.strip() for line in lines))


def dataset_root(name_or_path: str) -> Path:
    """The folder of a data set named on a command line or in a config: ``<data dir>/<name>``, or a path."""
    candidate = Path(name_or_path)
    return candidate if (candidate.is_absolute() or len(candidate.parts) > 1) else data_dir() / name_or_path


def open_dataset(name_or_path: str) -> Dataset:
    """Open ``<data dir>/<name>`` (or a path).

    Commands that should write the bundled digits when they are missing call
    :func:`common.digits.open_dataset_or_digits` instead.

    Raises:
        UserError: When the data set folder or its ``classes.txt`` is missing or invalid.
    """
    return load_dataset(dataset_root(name_or_path))


def dataset_for_list(list_path: Path) -> Dataset:
    """Open the data set a list file belongs to (the folder above its ``lists/``).

    Raises:
        UserError: When the list file is not inside ``<data set>/lists/``.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise UserError(f"{display_path(list_path)}: list file not found")
    if list_path.parent.name != "lists":
        raise UserError(
            f"{display_path(list_path)}: a list file must live in <data set>/lists/ so that its "
            "image paths and classes.txt can be found"
        )
    return load_dataset(list_path.parent.parent)


def read_split(dataset: Dataset, split: str) -> list[Sample]:
    """Read and validate ``<root>/lists/<split>.txt``.

    Raises:
        UserError: When the list file does not exist (the message lists the splits
            that do).
        ListFileError: For any problem inside the file.
    """
    path = dataset.list_path(split)
    if not path.is_file():
        available = sorted(p.stem for p in (dataset.root / "lists").glob("*.txt"))
        raise UserError(
            f"{display_path(path)}: no list file for split {split!r}; available: {available or 'none'}"
        )
    return read_list(dataset, path)


def read_list(dataset: Dataset, path: Path) -> list[Sample]:
    """Read and validate a list file of ``dataset``.

    Checks every line: the form ``<path> <label>``, an integer label within the
    classes, a path that stays inside the data set folder, no path listed twice, the
    image file present, and at least one sample. Decoding (and thus readability)
    is checked by :func:`common.images.load_samples`.

    Args:
        dataset: The data set the paths are relative to.
        path: The list file.

    Returns:
        The samples in file order.

    Raises:
        ListFileError: Listing every problem found, each with file and line.
    """
    shown = display_path(path)
    samples: list[Sample] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text_lines(read_text(path)), start=1):
        text = raw.strip()
        if line_break_in(raw):
            problems.append(f"{shown}:{number}: the line holds {line_break_in(raw)}; one sample per line, "
                            "'<image path> <label>'")
            continue
        if not text or text.startswith("#"):
            continue
        parsed = _parse_line(dataset, text, shown, number, first_line)
        if isinstance(parsed, str):
            problems.append(parsed)
            continue
        relative, label = parsed
        samples.append(Sample(path=relative, label=label, source=shown, line=number))
    if not samples and not problems:
        problems.append(f"{shown}: no samples (the file is empty or holds only comments)")
    if problems:
        raise ListFileError(problems)
    return samples


def _parse_line(dataset: Dataset, text: str, shown: str, number: int,
                first_line: dict[str, int]) -> tuple[str, int] | str:
    """``(relative path, label)`` of one list-file line, or the problem with it.

    A well-formed path is recorded in ``first_line`` (to find it listed twice) even
    when its image is missing.
    """
    where = f"{shown}:{number}"
    fields = text.rsplit(maxsplit=1)
    if len(fields) != 2:
        return f"{where}: expected '<image path> <label>', got {text!r}"
    image, label_text = fields
    label = parse_label(label_text)
    if label is None:
        return (f"{where}: label {label_text!r} is not a class index (the 0-based line number of the class in "
                "classes.txt, in ASCII digits 0-9)")
    if not 0 <= label < dataset.num_classes:
        return (f"{where}: label {label} is outside 0..{dataset.num_classes - 1} "
                f"(classes.txt has {dataset.num_classes} classes)")
    if "\\" in image:
        return f"{where}: path {image!r} uses '\\'; separate folders with '/'"
    if name_problem(image):
        return f"{where}: path {image!r} holds {name_problem(image)}; rename the file"
    relative = normalise_path(image)
    if relative is None:
        return f"{where}: path {image!r} leaves the data set folder; use a path relative to it"
    if relative in first_line:
        return f"{where}: {relative!r} is listed twice (first on line {first_line[relative]})"
    first_line[relative] = number
    image_file = dataset.root / relative
    if not image_file.is_file():
        if image_file.exists():
            return f"{where}: {display_path(image_file)} is not a regular file (a FIFO, a device or a folder)"
        return f"{where}: image not found: {display_path(image_file)}"
    return relative, label


def text_lines(text: str) -> list[str]:
    """The lines of a list file or ``classes.txt``: split at ``\\n`` only (a ``\\r`` before it dropped).

    Not ``str.splitlines``, which also splits at U+2028, U+0085, ``\\x1c`` and the other
    characters of :data:`LINE_BREAKS`: such a character inside a line is reported by
    :func:`line_break_in`, never silently taken for the end of a line.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def line_break_in(line: str) -> str | None:
    """``a line break (U+2028)``, naming the first character of :data:`LINE_BREAKS` in ``line``, or None."""
    found = next((c for c in line if c in LINE_BREAKS), None)
    return None if found is None else f"a line break (U+{ord(found):04X})"


def name_problem(name: str) -> str | None:
    """What keeps a class name or an image path from being written in ``classes.txt`` or a list file, or None.

    The one rule for names every data tool applies on import: not empty, no leading or
    trailing white space (lines are stripped), no line break of any kind (U+2028, U+0085
    and the other separators :data:`LINE_BREAKS` lists break lines too), no other control
    character, and no backslash (paths use ``/``).
    """
    if not name.strip():
        return "empty"
    if name != name.strip():
        return "leading or trailing white space"
    if _LINE_BREAK.search(name):
        return "a line break"
    if _CONTROL.search(name):
        return "a control character"
    if "\\" in name:
        return "a backslash"
    return None


def parse_label(text: str) -> int | None:
    """A class index written in ASCII digits (``"0"``, ``"12"``), or None.

    Stricter than ``int()``, which also takes signs, spaces, underscores and other
    scripts' digits (``"+1"``, ``"1_0"``, ``"\u0661"``).
    """
    return int(text) if text.isascii() and text.isdigit() else None


def normalise_path(image: str) -> str | None:
    """An image path relative to the data set folder, normalised; None when it would leave the folder.

    Absolute paths, drive letters and paths that climb above the folder (``..``)
    leave it; ``raw/./a.png`` becomes ``raw/a.png``. The check is on the text: see
    :func:`resolve_image` for symbolic links.
    """
    if image.startswith("/") or (len(image) > 1 and image[1] == ":"):
        return None
    relative = posixpath.normpath(image)
    if relative == ".." or relative.startswith("../") or relative == ".":
        return None
    return relative


def resolve_image(root: Path, image: str, homes: Sequence[Path] = ()) -> Path | None:
    """The file an image path names inside a data set folder, symbolic links followed; None when it is outside.

    For code that reads a data set's files from a path it did not validate as a list
    file (a result file's rows): besides :func:`normalise_path`'s check on the text,
    the resolved file must lie inside the resolved data set folder, or inside one of
    ``homes`` (the source folder of a ``--link symlink`` import, when trusted: see
    :func:`evaluate.trust.image_homes`), so a symbolic link cannot lead elsewhere.

    Args:
        root: The data set folder.
        image: The path, relative to ``root``, ``/``-separated.
        homes: Other folders (resolved) the file may lie in.
    """
    relative = normalise_path(image) if "\\" not in image else None
    if relative is None:
        return None
    resolved = (Path(root) / relative).resolve()
    return resolved if any(resolved.is_relative_to(home) for home in [Path(root).resolve(), *homes]) else None


@dataclass(frozen=True)
class PrepareRecord:
    """``prepare.json``: how a data set folder was made (the bundled digits, or an import).

    Attributes:
        source: What was read: a folder, a manifest, ``sklearn.datasets.load_digits``.
        seed: Seed of the stratified split (None when the source assigned the splits).
        split_sizes: Images per split.
        reader: The source format (``folder``, ``csv``; see ``datatools.readers``); None for the digits.
        link: How images reached ``raw/``: ``copy``, ``symlink`` or ``hardlink`` (None: written there).
        val_fraction: Share of the images put in ``val`` by the split rule.
        test_fraction: Share of the images put in ``test``.
        dev_per_class: Training images per class in ``dev``.
        class_counts: Images per class.
        left_out: ``{"path", "reason"}`` of each file of the source not in the data set.
        additions: One entry per ``prepare-data --add-to`` since: ``{"source", "reader", "link", "time",
            "change", "added", "linked_folder"}`` (``linked_folder``: the folder holding every original a
            ``--link symlink`` addition links to; the list history, ``lists/CHANGES.jsonl``, says per image).
        details: Anything else the writer recorded (e.g. the digits' pixel scale).
        format_version: :data:`PREPARE_VERSION`.
    """

    source: str
    seed: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    reader: str | None = None
    link: str | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    dev_per_class: int | None = None
    class_counts: dict[str, int] | None = None
    left_out: list[dict[str, str]] = field(default_factory=list)
    additions: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    format_version: int = PREPARE_VERSION

    @classmethod
    def from_dict(cls, data: Any, source: str) -> PrepareRecord:
        """Validate a parsed ``prepare.json``; keys this code does not know are kept in ``details``.

        Raises:
            UserError: For another version, or a missing or mistyped ``source``, ``seed`` or ``split_sizes``.
        """
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a JSON object")
        if data.get("format_version", PREPARE_VERSION) != PREPARE_VERSION:
            raise UserError(f"{source}: format_version {data.get('format_version')!r}; this code reads "
                            f"{PREPARE_VERSION}")
        types = {"source": (str,), "seed": (int, type(None)), "split_sizes": (dict,), "link": (str, type(None)),
                 "left_out": (list,), "additions": (list,), "details": (dict,)}
        wrong = [key for key, kinds in types.items() if key in data and not isinstance(data[key], kinds)]
        if "source" not in data or wrong:
            raise UserError(f"{source}: not a record of this project's data tools ({wrong or 'no source'})")
        known = {f.name for f in fields(cls)} - {"details"}
        details = {**data.get("details", {}), **{k: v for k, v in data.items() if k not in known | {"details"}}}
        return cls(**{k: v for k, v in data.items() if k in known}, details=details)

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout, without empty optional fields."""
        return {key: value for key, value in asdict(self).items()
                if value not in (None, {}, []) or key == "left_out"}


def write_prepare_record(root: Path, record: PrepareRecord) -> None:
    """Write ``<root>/prepare.json`` atomically."""
    write_json(Path(root) / PREPARE_RECORD, record.to_dict())


def read_prepare_record(root: Path) -> PrepareRecord | None:
    """``<root>/prepare.json``, or None when the folder has none.

    Raises:
        UserError: When it exists but cannot be read or is not a record of the data tools.
    """
    path = Path(root) / PREPARE_RECORD
    if not path.is_file():
        return None
    return PrepareRecord.from_dict(read_json(path), display_path(path))


def linked_sources(root: Path) -> list[Path]:
    """Every folder a data set's images link to: its ``--link symlink`` import's source (:func:`linked_source`)
    and the sources of its ``--add-to --link symlink`` additions (absolute folders below the root only)."""
    found = [source for source in [linked_source(root)] if source is not None]
    try:
        record = read_prepare_record(root)
    except UserError:
        return found
    for addition in record.additions if record is not None else []:
        folder = Path(str(addition.get("linked_folder") or ""))
        if addition.get("link") == "symlink" and folder.is_absolute() and len(folder.parts) >= 2:
            found.append(folder)
    return found


def linked_source(root: Path) -> Path | None:
    """The folder a ``--link symlink`` import's images link to, as its ``prepare.json`` says, else None.

    Text read from a file: :func:`evaluate.trust.image_homes` decides whether to follow it.
    A missing or damaged record, or one that names no folder (or the whole file
    system), gives None.
    """
    try:
        record = read_prepare_record(root)
    except UserError:
        return None
    if record is None or record.link != "symlink" or len(Path(record.source).parts) < 2:
        return None
    return Path(record.source)

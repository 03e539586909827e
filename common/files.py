"""Writing and hashing files: atomic writes, JSON and CSV, content hashes.

Atomic writes: a reader sees the old file or the new one, never half of one. The
content goes to a temporary file in the same folder, is flushed to disk, and then
renamed over the target (``os.replace`` is atomic on POSIX and Windows). Folders and
file sets are published by :func:`common.staging.staged`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import select
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from common.errors import UserError
from common.limits import MAX_JSON_DEPTH, MAX_YAML_DEPTH, MAX_YAML_NODES
from common.paths import display_path

TEMP_SUFFIX = ".tmp"
"""Suffix of the temporary files of :func:`atomic_write` (``.<name>.tmp-<host>-<pid>.<random>.tmp``, so
that :func:`common.staging.remove_stale_staging` recognises those of dead processes)."""


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically.

    Args:
        path: The file to create or replace.
        write: Called with a binary file object open for writing the new content.

    Raises:
        OSError: When writing fails (a full disk, no permission); the temporary file
            is removed, the target is unchanged, and the error names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}."
    handle, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's files are private; give the usual permissions
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write names no file; the message should
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: indented, keys in insertion order, a final newline.

    Values JSON does not know (paths, dates) are written as their ``str``.
    """
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


FORMULA_START = frozenset("=+-@\t\r")
"""First characters that make a spreadsheet evaluate a cell (OWASP's list for CSV injection)."""

_QUOTED_OR_FORMULA = FORMULA_START | {"'"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file atomically (``\\n`` line ends, the header first).

    The one CSV dialect of the project: every CSV it writes goes through this function
    or :func:`append_csv`, and is read back by :func:`read_csv`. Text cells a
    spreadsheet would evaluate are neutralised (:func:`neutral_cell`).
    """
    atomic_write_text(path, csv_text(header, rows))


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """Rows (after an optional header) as CSV text in the project's dialect, cells neutralised.

    Fields are quoted where needed. Python's writer leaves a carriage return unquoted
    when lines end with ``\\n``, which would split the row for every reader, so a row
    holding one has all its fields quoted. Rows are written in chunks (memory follows
    the chunk, not the file).
    """
    buffer = io.StringIO()
    lines = itertools.chain([] if header is None else [header], rows)
    while chunk := list(itertools.islice(lines, CSV_CHUNK)):
        buffer.write(_csv_chunk([[neutral_cell(cell) for cell in row] for row in chunk]))
    return buffer.getvalue()


CSV_CHUNK = 4096
"""Rows :func:`csv_text` writes at a time."""


def _csv_chunk(rows: list[list[Any]]) -> str:
    """Neutralised rows as CSV text; rows with a carriage return in a cell quoted whole."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    if "\r" not in buffer.getvalue():  # no cell holds one: the common case, one call for the chunk
        return buffer.getvalue()
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for cells in rows:
        (quoted if any(cell.__class__ is str and "\r" in cell for cell in cells) else plain).writerow(cells)
    return buffer.getvalue()


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def plain_cells(cells: Iterable[str]) -> bool:
    """True when :func:`csv_text` writes each of these text cells exactly as it is (nothing to quote or neutralise).

    Rows of two or more such cells may then be joined with commas directly, giving
    the same text as :func:`csv_text` (a fast path for many rows; ``predict``'s rows
    file uses it). A sufficient test, not an exact one: it says False for some cells
    :func:`csv_text` also leaves alone (``-0.5``, ``'a``), and a row of one empty
    cell is written quoted.
    """
    return not any(cell[:1] in _QUOTED_OR_FORMULA or _NEEDS_QUOTES.search(cell) for cell in cells)


def neutral_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never evaluates (OWASP's rule against CSV injection).

    A text cell (a ``str``) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a leading ``'``, unless it is a plain decimal number
    (``-0.5``, ``+1e-05``: a spreadsheet reads those as numbers, and so do our
    readers). A text cell that starts with ``'`` followed (after more ``'``) by
    one of those characters gets one more ``'``, so :func:`read_csv` gives every
    cell back exactly. Numbers written as numbers (``int``, ``float``) are never changed.
    """
    if value.__class__ is not str or value[:1] not in _QUOTED_OR_FORMULA:
        return value
    if value.lstrip("'")[:1] in FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def restored_cell(cell: str) -> str:
    """The text :func:`neutral_cell` was given: one leading ``'`` removed where it added one."""
    if cell[:1] == "'" and cell.lstrip("'")[:1] in FORMULA_START:
        return cell[1:]
    return cell


def append_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Append rows to a CSV file, creating it with its header first when it does not exist.

    For files that grow while a command runs (a run's ``metrics.csv``); each call
    writes whole lines in one ``write``.
    """
    new = not Path(path).exists()
    text = csv_text(header if new else None, rows)
    with open(path, "a", encoding="utf-8", newline="") as stream:
        stream.write(text)
        stream.flush()


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    """The rows of a CSV file (the header first), as :func:`read_text` reads text (a BOM stripped).

    Cells neutralised by :func:`neutral_cell` are given back as they were written
    (:func:`restored_cell`).

    Args:
        path: The file.
        delimiter: The field separator (a tab for TSV files).

    Raises:
        UserError: Naming the file (and line), when it cannot be read, is not UTF-8, is
            not CSV, or holds a field longer than ``csv.field_size_limit()`` characters.
    """
    text = read_text(path, newline="")  # a carriage return inside a quoted field is kept as it is
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        where = f"{display_path(path)}:{reader.line_num}"
        if "field limit" in str(exc):
            raise UserError(f"{where}: a field longer than {csv.field_size_limit():,} characters; not a file this "
                            "project reads") from None
        raise UserError(f"{where}: not a CSV file ({exc})") from None
    if "'" in text:
        rows = [[restored_cell(cell) for cell in row] for row in rows]
    return rows


def parse_json(text: str, source: str, problem: str = "not valid JSON") -> Any:
    """Parse JSON text that a file (or a model's metadata) held.

    Args:
        text: The text.
        source: Where it came from, the start of an error message.
        problem: What the owner of the file calls a text that cannot be parsed.

    Raises:
        UserError: ``<source>: <problem> (<why>)``, when the text is not JSON or is nested more than
            :data:`common.limits.MAX_JSON_DEPTH` deep.
    """
    too_deep = f"{source}: {problem} (nested more than {MAX_JSON_DEPTH} deep; this project's files are not)"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: {problem} ({exc})") from None
    except RecursionError:
        raise UserError(too_deep) from None
    if nesting_exceeds(data, MAX_JSON_DEPTH):
        raise UserError(too_deep)
    return data


def nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether lists and dicts in ``data`` nest more than ``limit`` deep (checked without recursion)."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]
    return False


def read_json(path: Path, problem: str = "not valid JSON") -> Any:
    """A JSON file's content, read as :func:`read_text` reads text (UTF-8, a leading BOM stripped).

    The one way the project reads its JSON files (manifests, records, indexes), so a
    BOM or a damaged file means the same everywhere.

    Raises:
        UserError: Naming the file, when it cannot be read or is not JSON.
    """
    return parse_json(read_text(path), display_path(path), problem)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that holds a mapping, parsed safely (:func:`parse_yaml`), a BOM stripped.

    Args:
        path: The file.
        what: What the mapping holds, for the error message.

    Raises:
        UserError: When the file is missing or unreadable, not valid YAML (or too large once its
            aliases are expanded), or not a mapping.
    """
    shown = display_path(path)
    data = parse_yaml(read_text(path), shown, "not a valid YAML mapping")
    if not isinstance(data, dict):
        raise UserError(f"{shown}: expected a mapping of {what}")
    return data


def parse_yaml(text: str, source: str, problem: str = "not valid YAML") -> Any:
    """Parse YAML text safely: no tag builds an object, and the size is bounded before anything is built.

    The one YAML parser of ``common`` (OmegaConf, which the typed configs use, has its
    own alias limit). The document is composed first; it is refused when it holds more
    than :data:`common.limits.MAX_YAML_NODES` nodes with its aliases expanded (an alias
    bomb) or nests more than :data:`common.limits.MAX_YAML_DEPTH` deep.

    Args:
        text: The YAML text.
        source: Where it came from, the start of an error message.
        problem: What the caller calls a text that cannot be parsed.

    Raises:
        UserError: ``<source>: <problem> (<why>)``.
    """
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        too_large = _yaml_size_problem(node) if node is not None else None
        if too_large:
            raise UserError(f"{source}: {problem} ({too_large})")
        twice = _duplicate_key(node) if node is not None else None
        if twice:
            raise UserError(f"{source}: {problem} ({twice}; a key may appear once: PyYAML would keep the last)")
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: {problem} ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise UserError(f"{source}: {problem} (nested more than {MAX_YAML_DEPTH} deep)") from None
    finally:
        loader.dispose()


def _yaml_size_problem(root: Any) -> str | None:
    """What makes a composed YAML document too large to build, or None (aliases counted as often as used)."""
    import yaml

    stack, count = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            return f"more than {MAX_YAML_NODES:,} values once its aliases are expanded"
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            continue
        if depth > MAX_YAML_DEPTH:
            return f"nested more than {MAX_YAML_DEPTH} deep"
        stack += [(child, depth + 1) for child in children]
    return None


def _duplicate_key(root: Any) -> str | None:
    """The first key a mapping of the composed document holds twice (the same value read the same way), or None."""
    import yaml

    stack, seen_nodes = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # an alias: the node is checked once
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in keys:
                        return f"key {key.value!r} twice, lines {keys[key.tag, key.value]} and {line}"
                    keys[key.tag, key.value] = line
            stack += [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return None


def yaml_text(data: dict[str, Any]) -> str:
    """Plain data as block-style YAML, keys in insertion order (what :func:`read_yaml` reads back)."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def read_text(path: Path, newline: str | None = None) -> str:
    """A UTF-8 text file's content; a leading byte-order mark (BOM) is stripped.

    The one way text files written by people (list files, ``classes.txt``, result
    files opened in a spreadsheet) are read, so a BOM means the same in every stage.

    Args:
        path: The file.
        newline: As :func:`open` takes it: None turns ``\\r\\n`` and ``\\r`` into ``\\n``;
            ``""`` keeps every line end as written (what the CSV reader needs).

    Raises:
        UserError: Naming the file, when it cannot be read or is not UTF-8.
    """
    try:
        with open(_readable_fd(Path(path)), encoding="utf-8-sig", newline=newline) as stream:
            return stream.read()
    except UnicodeDecodeError as exc:
        raise UserError(f"{display_path(path)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{display_path(path)}: cannot read ({exc.strerror})") from None


PIPE_WAIT_SECONDS = 10.0
"""How long a named pipe given as a file may stay silent before it is refused (nobody writes it)."""


def _readable_fd(path: Path) -> int:
    """A file descriptor to read ``path`` from, once it is known that reading it ends.

    A regular file opens as usual. A pipe (``--threshold <(...)``, a named pipe) is read only once something
    writes it (or closes it) within :data:`PIPE_WAIT_SECONDS`; ``open()`` would wait for a writer for ever. A
    folder, a device (``/dev/zero`` never ends) or a socket is refused.

    Raises:
        UserError: Naming the file and what it is instead.
        OSError: As :func:`os.open` (a missing file, no permission).
    """
    kind = os.stat(path).st_mode
    if stat.S_ISREG(kind):
        return os.open(path, os.O_RDONLY)
    if not stat.S_ISFIFO(kind):
        what = "a folder" if stat.S_ISDIR(kind) else "a device or socket, not a file"
        raise UserError(f"{display_path(path)}: {what}; give a file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    ready, _, _ = select.select([fd], [], [], PIPE_WAIT_SECONDS)
    if not ready:
        os.close(fd)
        raise UserError(f"{display_path(path)}: a pipe that nobody wrote to in {PIPE_WAIT_SECONDS:.0f} s; give a "
                        "file, or start the program that writes it first")
    os.set_blocking(fd, True)
    return fd


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_hash(data: Any) -> str:
    """sha256 of the canonical JSON of plain data (keys sorted, no whitespace)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

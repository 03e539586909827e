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
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from common.errors import UserError
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


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file atomically (``\\n`` line ends, the header first).

    The one CSV dialect of the project: every CSV it writes goes through this function
    or :func:`append_csv`, and is read back by :func:`read_csv`.
    """
    atomic_write_text(path, csv_text(header, rows))


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """Rows (after an optional header) as CSV text in the project's dialect."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


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

    Args:
        path: The file.
        delimiter: The field separator (a tab for TSV files).

    Raises:
        UserError: Naming the file, when it cannot be read, is not UTF-8 or is not CSV.
    """
    try:
        return list(csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise UserError(f"{display_path(path)}: not a CSV file ({exc})") from None


def parse_json(text: str, source: str, problem: str = "not valid JSON") -> Any:
    """Parse JSON text that a file (or a model's metadata) held.

    Args:
        text: The text.
        source: Where it came from, the start of an error message.
        problem: What the owner of the file calls a text that cannot be parsed.

    Raises:
        UserError: ``<source>: <problem> (<why>)``, when the text is not JSON or is nested too deeply to read.
    """
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: {problem} ({exc})") from None
    except RecursionError:
        raise UserError(f"{source}: {problem} (nested too deeply to read)") from None


def read_json(path: Path, problem: str = "not valid JSON") -> Any:
    """A JSON file's content, read as :func:`read_text` reads text (UTF-8, a leading BOM stripped).

    The one way the project reads its JSON files (manifests, records, indexes), so a
    BOM or a damaged file means the same everywhere.

    Raises:
        UserError: Naming the file, when it cannot be read or is not JSON.
    """
    return parse_json(read_text(path), display_path(path), problem)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that holds a mapping, parsed safely (no tags build objects), a BOM stripped.

    Args:
        path: The file.
        what: What the mapping holds, for the error message.

    Raises:
        UserError: When the file is missing or unreadable, not valid YAML, or not a mapping.
    """
    import yaml

    shown = display_path(path)
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise UserError(f"{shown}: not a valid YAML mapping ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{shown}: expected a mapping of {what}")
    return data


def yaml_text(data: dict[str, Any]) -> str:
    """Plain data as block-style YAML, keys in insertion order (what :func:`read_yaml` reads back)."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def read_text(path: Path) -> str:
    """A UTF-8 text file's content; a leading byte-order mark (BOM) is stripped.

    The one way text files written by people (list files, ``classes.txt``, result
    files opened in a spreadsheet) are read, so a BOM means the same in every stage.

    Raises:
        UserError: Naming the file, when it cannot be read or is not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{display_path(path)}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{display_path(path)}: cannot read ({exc.strerror})") from None


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

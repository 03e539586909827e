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
    """Write a CSV file atomically (``\\n`` line ends, the header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


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

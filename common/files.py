"""File helpers: atomic writes and content hashes.

Atomic writes: a reader sees the old file or the new one, never half of one. The
content goes to a temporary file in the same folder, is flushed to disk, and
then renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically.

    Args:
        path: The file to create or replace.
        write: Called with a binary file object open for writing the new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's files are private; give the usual permissions
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_folder(staging: Path, target: Path, overwrite: bool) -> None:
    """Move a fully written staging folder to ``target`` by renames.

    An existing ``target`` is replaced only with ``overwrite`` (it is renamed aside
    first and deleted after the new folder is in place).

    Raises:
        FileExistsError: When ``target`` exists and ``overwrite`` is off.
    """
    if target.exists():
        if not overwrite:
            raise FileExistsError(target)
        aside = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file that may be missing or damaged: ``{}`` in those cases.

    For optional side files (manifests, cards, evaluation context) that a reader can
    do without; where the file is required, read it and report the error instead.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

"""Exclusive use of a folder by one process: an operating-system file lock.

A training run holds ``<run>/.lock`` (``fcntl.flock``) for as long as it trains, and
writes its host, pid, start time and command into it. A second train or resume of
the same run fails at once, naming the holder. The system releases the lock when the
holder exits, however it exits (a crash, ``kill -9``, a power cut), so a lock left by
a dead process never blocks. ``flock`` is POSIX; on network filesystems it depends
on the server (NFSv4 supports it), see docs/robustness.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import parse_json
from common.provenance import host_name, now


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the duration of the block.

    Args:
        path: The lock file (created when missing).
        what: What is locked, for the message (e.g. ``output/train/run-1``).

    Raises:
        UserError: When another process holds it, naming its host, pid and start time.
    """
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read(handle)
        handle.close()
        raise UserError(f"{what} is in use by pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
                        f"(since {holder.get('since', '?')}); wait for it to end, or stop that process") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": host_name(), "pid": os.getpid(), "since": now(), "command": sys.argv}))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock file ``path`` (``host``, ``pid``, ``since``, ``command``), or None when nobody does."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read(handle) or {"pid": "?", "host": "?"}
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _read(handle: Any) -> dict[str, Any]:
    try:
        handle.seek(0)
        data = parse_json(handle.read() or "{}", "lock file")
    except (OSError, UnicodeDecodeError, UserError):
        return {}
    return data if isinstance(data, dict) else {}


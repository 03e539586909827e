"""Where and when something was made: time stamps, package versions, processes."""

from __future__ import annotations

import os
import platform
import socket
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path


def now() -> str:
    """The current time, ISO 8601 with the local time zone, to the second."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def moment(text: str) -> datetime:
    """An ISO 8601 time (as :func:`now` writes it) as a comparable moment; the earliest one for
    text that is not such a time (times with other offsets compare correctly)."""
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.astimezone()


def stamp() -> str:
    """The current local time as ``YYYYmmdd-HHMMSS``, for file and folder names."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def host_name() -> str:
    """This machine's host name."""
    return socket.gethostname()


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Versions of Python, the platform and the named packages (``not installed`` when absent)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def process_alive(host: str | None, pid: int | None) -> bool | None:
    """Whether a process recorded with its host and pid still runs.

    Returns:
        True or False for a process on this host; None when it cannot be told
        (another host, or no pid recorded).
    """
    if not pid or host != host_name():
        return None
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except (OverflowError, ValueError):
        return False
    return True


def command_text() -> str:
    """This process's command line as a user typed it: ``python -m datatools prepare apply x.csv``."""
    import shlex
    import sys

    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    head = f"python -m {program.parent.name}" if program.name == "__main__.py" else str(program)
    return " ".join([head, *(shlex.quote(arg) for arg in sys.argv[1:])])

"""Real servers the tests start and stop themselves: a throwaway PostgreSQL cluster (shared sweeps).

Debian's ``postgresql`` package provides the programs; ``.ci/run`` installs it and sets
``IMAGEPIPE_REQUIRE_POSTGRES``, so CI fails instead of skipping when it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def postgres_programs() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (on PATH, or Debian's /usr/lib/postgresql/<version>/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free local port; yields the database URL of an empty database.

    The server refuses to run as root, so under root it runs as the ``postgres`` user (created by Debian's
    package), in a folder of its own under the system's temporary folder.
    """
    programs = postgres_programs()
    if programs is None:
        message = "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
        if os.environ.get("IMAGEPIPE_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def as_owner() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    folder = Path(tempfile.mkdtemp(prefix="imagepipe-postgres-"))
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    port, data = free_port(), folder / "data"
    run = {"preexec_fn": as_owner, "capture_output": True, "text": True, "timeout": 120, "check": True}
    try:
        subprocess.run([str(programs / "initdb"), "-D", str(data), "-U", "sweeper", "--auth=trust"], **run)
        subprocess.run([str(programs / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], **run)
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="sweeper", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE sweeps")
        connection.close()
        yield f"postgresql://sweeper@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       preexec_fn=as_owner, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)

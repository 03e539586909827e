"""The studio's queue: every job it was asked to run, in ``<output>/studio/jobs.sqlite3`` (WAL).

A job is one ``train`` command line (arguments after ``python -m train``) with its state:

- ``queued``: waiting for a free slot (:class:`studio.executors.Scheduler` starts the oldest first);
- ``running``: started; ``pid`` (local) or ``scheduler_id`` (Slurm) says where;
- ``cancelling``: SIGTERM sent, the run is saving its checkpoint;
- ``ended``: its process ended (``returncode``, and the run's own status in its folder);
- ``failed``: it could not start, or exited with an error (``message``);
- ``removed``: taken out of the queue before it started.

The database is the only place the studio keeps state: a studio that is killed and
started again finds every job, and every process it started, where it was. Opening
a database that is locked or not a database is a clear error naming the file; it is
never replaced.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.paths import display_path
from common.provenance import now

STATES = ("queued", "running", "cancelling", "ended", "failed", "removed")
ACTIVE = frozenset({"running", "cancelling"})
"""States of a job whose process may still be alive."""
SCHEMA_VERSION = 1
BUSY_SECONDS = 5.0
"""How long an operation waits for another process's write before the database counts as locked."""


@dataclass
class Job:
    """One row of the queue.

    Attributes:
        id: The job's number.
        name: The run name it trains (``--name``), or the run it continues.
        arguments: The command line after ``python -m train``.
        kind: ``start`` (a new run) or ``continue`` (``--resume`` of an interrupted run).
        executor: ``local`` or ``slurm``.
        state: One of :data:`STATES`.
        created: When it was queued (ISO 8601).
        started: When its process started.
        ended: When it ended.
        pid: The local process (its process group has the same number).
        host: The machine that started it.
        scheduler_id: The scheduler's job id (Slurm).
        run_dir: The run folder, once the run has made it.
        log: The job's stdout and stderr (also linked into the run folder as ``job.log``).
        returncode: The process's exit status, when the studio saw it end.
        message: What happened, in words (why it failed, how it ended).
    """

    id: int
    name: str
    arguments: list[str]
    kind: str = "start"
    executor: str = "local"
    state: str = "queued"
    created: str = ""
    started: str | None = None
    ended: str | None = None
    pid: int | None = None
    host: str | None = None
    scheduler_id: str | None = None
    run_dir: str | None = None
    log: str | None = None
    returncode: int | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """A job from its database row."""
        values = dict(row)
        values["arguments"] = json.loads(values["arguments"])
        values["extra"] = json.loads(values.get("extra") or "{}")
        return cls(**values)


COLUMNS = tuple(f.name for f in fields(Job))
_SQL_TYPES = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "pid": "INTEGER", "returncode": "INTEGER"}


class JobStore:
    """The queue database (one owner of ``jobs.sqlite3``).

    Args:
        path: The database file (created with its folder when missing).

    Raises:
        UserError: When the file is locked by another process for longer than :data:`BUSY_SECONDS`,
            is not a database, or is the database of another program.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            self._check(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        shown = display_path(self.path)
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"{shown}: cannot open the studio's queue ({exc})") from None
        db.row_factory = sqlite3.Row
        try:
            yield db
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise UserError(f"{shown}: the studio's queue is locked by another process (waited "
                                f"{BUSY_SECONDS:g} s); is another program writing it?") from None
            raise UserError(f"{shown}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{shown}: not a usable queue database ({exc}); move it aside (it is kept as it is) "
                            "and start the studio again for an empty queue; runs in output/train are not "
                            "affected") from None
        finally:
            db.close()

    def _check(self, db: sqlite3.Connection) -> None:
        """Create the table in a new file; refuse a corrupt file or another program's database."""
        db.execute("PRAGMA journal_mode=WAL")
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {problem}")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            columns = ", ".join(f"{name} {_SQL_TYPES.get(name, 'TEXT')}" for name in COLUMNS)
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"CREATE TABLE jobs ({columns})")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
            return
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if "jobs" not in tables or version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"tables {sorted(tables)}, schema version {version}; this studio writes "
                                        f"version {SCHEMA_VERSION}")

    def add(self, name: str, arguments: list[str], kind: str = "start", executor: str = "local",
            extra: dict[str, Any] | None = None) -> Job:
        """Queue a job; returns it with its number."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO jobs (name, arguments, kind, executor, state, created, message, extra) "
                "VALUES (?, ?, ?, ?, 'queued', ?, '', ?)",
                (name, json.dumps(arguments), kind, executor, now(), json.dumps(extra or {})))
            job_id = cursor.lastrowid
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        """The job numbered ``job_id``.

        Raises:
            UserError: When there is none.
        """
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UserError(f"no job {job_id} in the queue")
        return Job.from_row(row)

    def all(self) -> list[Job]:
        """Every job, newest first."""
        with self._connect() as db:
            return [Job.from_row(row) for row in db.execute("SELECT * FROM jobs ORDER BY id DESC")]

    def in_state(self, *states: str) -> list[Job]:
        """Jobs in any of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", states)
            return [Job.from_row(row) for row in rows]

    def update(self, job_id: int, expect: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Set fields of a job; with ``expect``, only while its state is one of them.

        Returns:
            Whether the job was changed (False: its state had moved on meanwhile).
        """
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        if "arguments" in values:
            values["arguments"] = json.dumps(values["arguments"])
        if "extra" in values:
            values["extra"] = json.dumps(values["extra"])
        sets = ", ".join(f"{name} = ?" for name in values)
        where, parameters = "id = ?", [*values.values(), job_id]
        if expect:
            where += f" AND state IN ({', '.join('?' for _ in expect)})"
            parameters += list(expect)
        with self._connect() as db:
            return db.execute(f"UPDATE jobs SET {sets} WHERE {where}", parameters).rowcount == 1

    def names_in_use(self) -> set[str]:
        """Run names of jobs that are queued or running (a new job may not take one)."""
        return {job.name for job in self.in_state("queued", *ACTIVE) if job.kind == "start"}

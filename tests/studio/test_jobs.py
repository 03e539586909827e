"""The queue database: it survives a reopen, and a locked, corrupt or foreign file is a clear error that
leaves the file as it was."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from common.errors import UserError
from studio import jobs
from studio.jobs import JobStore


def test_jobs_survive_reopening(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    first = store.add("a", ["--name", "a"])
    store.add("b", ["--name", "b"], extra={"command": "pipenv run train --name b"})
    assert store.update(first.id, ("queued",), state="running", pid=123)
    again = JobStore(tmp_path / "jobs.sqlite3")
    assert [(j.name, j.state, j.pid) for j in again.all()] == [("b", "queued", None), ("a", "running", 123)]
    assert again.get(2).extra == {"command": "pipenv run train --name b"}
    assert again.names_in_use() == {"a", "b"}
    assert sqlite3.connect(tmp_path / "jobs.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_update_that_expects_another_state_changes_nothing(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.add("a", [])
    assert store.update(job.id, ("queued",), state="removed")
    assert not store.update(job.id, ("queued",), state="running")
    assert store.get(job.id).state == "removed"
    with pytest.raises(UserError, match="no job 7"):
        store.get(7)


def test_a_locked_database_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "BUSY_SECONDS", 0.2)
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="locked by another process"):
            store.add("a", [])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.add("a", []).id == 1  # free again: it works


def test_a_corrupt_database_is_refused_and_kept(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(UserError, match="not a usable queue database.*move it aside"):
        JobStore(path)
    assert path.read_bytes() == before


def test_another_program_s_database_is_refused(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="notes"):
        JobStore(path)


def test_two_threads_adding_at_once_lose_nothing(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    threads = [threading.Thread(target=lambda i=i: [store.add(f"{i}-{k}", []) for k in range(20)]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job.name for job in store.all()}) == 80


def test_a_job_s_run_is_its_own_name_not_a_longer_one(tmp_path):
    from studio.executors import find_run_dir
    from tests.studio.fake_runs import fake_run
    fake_run("exp-lr2", started="2026-12-01T10:00:00+00:00")
    job = jobs.Job(1, "exp", [], executor="slurm", started="2026-12-01T09:00:00+00:00")
    assert find_run_dir(job) is None
    mine = fake_run("exp", started="2026-12-01T10:00:00+00:00")
    assert find_run_dir(job) == mine.path


@pytest.mark.parametrize("returncode, out, err, alive", [
    (0, "RUNNING\n", "", True), (0, "PENDING\n", "", True), (0, "COMPLETED\n", "", False), (0, "", "", False),
    (1, "", "slurm_load_jobs error: Invalid job id specified", False),
    (1, "", "slurm_load_jobs error: Socket timed out on send/recv operation", True),
])
def test_a_slurm_job_is_only_over_when_slurm_says_so(monkeypatch, returncode, out, err, alive):
    import subprocess
    from studio.executors import SlurmExecutor
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, returncode, out, err))
    assert SlurmExecutor([]).alive(jobs.Job(1, "x", [], executor="slurm", scheduler_id="7")) is alive


def test_the_scheduler_outlives_an_unexpected_error(tmp_path, monkeypatch):
    from studio import executors
    from studio.executors import LocalExecutor, Scheduler
    monkeypatch.setattr(executors, "POLL_SECONDS", 0.05)
    scheduler = Scheduler(JobStore(tmp_path / "jobs.sqlite3"), LocalExecutor())
    calls = []

    def failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(scheduler, "tick", failing_once)
    scheduler.start()
    try:
        deadline = threading.Event()
        deadline.wait(1.0)
        assert len(calls) > 2 and scheduler.thread.is_alive()
    finally:
        scheduler.stop()

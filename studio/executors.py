"""Where a queued job runs: :class:`LocalExecutor` (a process group on this machine) or
:class:`SlurmExecutor` (``train --submit slurm``; cancelled with ``scancel``), and the
:class:`Scheduler` that starts queued jobs while slots are free and follows running ones.

Every job is started as ``python -m train <arguments>`` in its own process group
(session), with stdout and stderr in ``<output>/studio/jobs/<id>.log`` (linked into the run
folder as ``job.log`` once the run has made it). A run keeps going when the studio dies;
a studio started again finds its process by pid and start time (:func:`process_start`), so a
reused pid is never taken for it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

from common.errors import UserError
from common.paths import PROJECT_ROOT, display_path, output_dir
from common.provenance import host_name, moment, now
from common.run_folder import RunFolder, runs_root
from studio.jobs import ACTIVE, Job, JobStore
from studio.runs import tail_text
from studio.security import child_environment

LOG = logging.getLogger("studio")
POLL_SECONDS = 1.0
"""How often the scheduler looks at the queue and the running jobs."""
SLURM_JOB = re.compile(r"Submitted batch job (\d+)|job (\d+)")
FINAL_SLURM_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                                "BOOT_FAIL", "DEADLINE", "PREEMPTED"})
"""``squeue`` states of a job that has ended (it may still be listed for a while)."""


def jobs_dir() -> Path:
    """``<output>/studio/jobs``: the jobs' logs."""
    return output_dir() / "studio" / "jobs"


def train_command(arguments: list[str]) -> list[str]:
    """The process a job runs: this Python, ``-m train``, the job's arguments (never a shell)."""
    return [sys.executable, "-m", "train", *arguments]


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields and fields[0] == "Z":
        return None  # a zombie has ended
    return fields[19] if len(fields) > 19 else None


class Executor(Protocol):
    """What runs a job: start it, say whether it still runs, cancel it."""

    name: str

    def extra_arguments(self) -> list[str]:
        """What the executor adds to every job's ``train`` command line (shown with the command)."""

    def start(self, job: Job, log: Path) -> dict[str, object]:
        """Start ``job`` writing to ``log``; returns the job fields to record (``pid``, ``scheduler_id``, ...)."""

    def alive(self, job: Job) -> bool:
        """Whether the job's process (or scheduler job) still runs."""

    def returncode(self, job: Job) -> int | None:
        """Its exit status, when known."""

    def cancel(self, job: Job) -> None:
        """Ask it to stop (SIGTERM: the run saves a checkpoint and is recorded preempted)."""


class LocalExecutor:
    """Jobs as process groups on this machine."""

    name = "local"

    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def extra_arguments(self) -> list[str]:
        """What this executor adds to a job's command line (nothing)."""
        return []

    def start(self, job: Job, log: Path) -> dict[str, object]:
        """Start ``python -m train ...`` in a new session, output to ``log``."""
        env = {**child_environment(), "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as out:
            process = subprocess.Popen(train_command(job.arguments), cwd=PROJECT_ROOT, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                       start_new_session=True)
        self.processes[process.pid] = process
        return {"pid": process.pid, "host": host_name(), "extra": {**job.extra, "start": process_start(process.pid)}}

    def alive(self, job: Job) -> bool:
        """The process runs: our child not yet reaped, or (after a restart) the same pid with the same start time."""
        if job.pid is None or job.host != host_name():
            return False
        process = self.processes.get(job.pid)
        if process is not None:
            return process.poll() is None
        started = process_start(job.pid)
        return started is not None and started == job.extra.get("start")

    def returncode(self, job: Job) -> int | None:
        """The exit status of a child this studio started (None for one found after a restart)."""
        process = self.processes.pop(job.pid, None) if job.pid else None
        return process.poll() if process is not None else None

    def cancel(self, job: Job) -> None:
        """SIGTERM to the job's process group."""
        if job.pid and self.alive(job):
            try:
                os.killpg(job.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class SlurmExecutor:
    """Jobs as Slurm batch jobs: ``python -m train ... --submit slurm`` (a job that requeues itself when preempted)."""

    name = "slurm"

    def __init__(self, options: list[str]):
        self.options = options

    def extra_arguments(self) -> list[str]:
        """``--submit slurm`` and the studio's ``--slurm`` options."""
        return ["--submit", "slurm", *(item for option in self.options for item in ("--slurm", option))]

    def start(self, job: Job, log: Path) -> dict[str, object]:
        """Submit the job (``train --submit slurm``); its own output goes where train's Slurm script says."""
        result = subprocess.run(train_command([*job.arguments, *self.extra_arguments()]), cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=300, env=child_environment())
        log.write_text(result.stdout + result.stderr)
        found = SLURM_JOB.search(result.stdout + result.stderr)
        if result.returncode != 0 or not found:
            raise UserError(_last_error(result.stdout + result.stderr) or "sbatch did not say which job it started")
        return {"scheduler_id": found.group(1) or found.group(2), "host": host_name()}

    def alive(self, job: Job) -> bool:
        """``squeue`` lists the job in a state that is not final; when ``squeue`` cannot answer (a busy controller),
        the job counts as alive (a job is only recorded ended when Slurm says so)."""
        try:
            result = subprocess.run(["squeue", "-h", "-j", str(job.scheduler_id), "-o", "%T"], capture_output=True,
                                    text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return True
        if result.returncode != 0:
            return "invalid job id" not in result.stderr.lower()  # a job Slurm has forgotten has ended
        state = result.stdout.strip()
        return bool(state) and state not in FINAL_SLURM_STATES

    def returncode(self, job: Job) -> int | None:
        """Not known without accounting (``sacct``); the run's own status says how it ended."""
        return None

    def cancel(self, job: Job) -> None:
        """``scancel`` (Slurm sends SIGTERM, waits, then kills)."""
        subprocess.run(["scancel", str(job.scheduler_id)], capture_output=True, timeout=60)


def _last_error(text: str) -> str:
    """The last ``error: ...`` line of a process's output (what a job that failed said), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1]


def find_run_dir(job: Job) -> Path | None:
    """The run folder a job made: named ``<name>-<time>``, started after the job, by its process when local."""
    if not job.started:
        return None
    newest: tuple[str, Path] | None = None
    own = re.compile(re.escape(job.name) + r"-\d{8}-\d{6}(-\d+)?")
    for folder in runs_root().glob(f"{job.name}-*"):
        if not own.fullmatch(folder.name):
            continue  # another name that begins with this one (exp-lr2 for exp)
        try:
            manifest = RunFolder(folder).read_manifest()
        except UserError:
            continue
        if moment(manifest.started) < moment(job.started):
            continue
        if job.executor == "local" and (manifest.pid != job.pid or manifest.host != job.host):
            continue
        if newest is None or manifest.started > newest[0]:
            newest = (manifest.started, folder)
    return newest[1] if newest else None


class Scheduler:
    """Starts queued jobs while fewer than ``slots`` run, follows running ones, records how each ended.

    Args:
        store: The queue.
        executor: Where jobs run.
        slots: Most jobs running at once (local executor).
    """

    def __init__(self, store: JobStore, executor: Executor, slots: int = 1):
        self.store, self.executor, self.slots = store, executor, slots
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow the queue in a background thread until :meth:`stop`."""
        self.thread = threading.Thread(target=self._loop, name="studio-scheduler", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop following the queue (jobs keep running)."""
        self._stop.set()
        if self.thread:
            self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except UserError as exc:  # a locked queue: say so, try again next time
                LOG.warning("scheduler: %s", exc)
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad look (a full disk, a tool gone)
                LOG.exception("scheduler: this look at the queue failed; trying again")
            self._stop.wait(POLL_SECONDS)

    def tick(self) -> None:
        """One look: finish jobs whose process ended, find their run folders, start queued jobs in free slots."""
        with self._lock:
            running = 0
            for job in self.store.in_state(*ACTIVE):
                if self.executor.alive(job):
                    running += 1
                    self._link_run(job)
                else:
                    self._finish(job)
            for job in self.store.in_state("queued"):
                if running >= self.slots and self.executor.name == "local":
                    break
                if self._start(job):
                    running += 1

    def _start(self, job: Job) -> bool:
        folder = jobs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"{job.id}.log"
        if not self.store.update(job.id, ("queued",), state="running", started=now(), log=str(log)):
            return False  # removed meanwhile
        try:
            recorded = self.executor.start(self.store.get(job.id), log)
        except (UserError, OSError, subprocess.SubprocessError) as exc:
            self.store.update(job.id, state="failed", ended=now(), message=f"could not start: {exc}")
            return False
        try:
            self.store.update(job.id, **recorded)
        except UserError:  # the queue stayed locked: a job nobody can follow must not run
            self.executor.cancel(Job(job.id, job.name, job.arguments, executor=job.executor, **recorded))
            raise
        return True

    def _link_run(self, job: Job) -> Path | None:
        """Record the job's run folder once it exists, and link the job's log into it as ``job.log``."""
        run_dir = Path(job.run_dir) if job.run_dir else find_run_dir(job)
        if run_dir is None:
            return None
        if not job.run_dir:
            self.store.update(job.id, run_dir=str(run_dir))
        link = run_dir / "job.log"
        if job.log and not link.exists() and Path(job.log).is_file():
            try:
                os.link(job.log, link)
            except OSError:
                pass  # another file system: the log stays under output/studio/jobs
        return run_dir

    def _finish(self, job: Job) -> None:
        code = self.executor.returncode(job)
        run_dir = self._link_run(job)
        status = None
        if run_dir is not None:
            try:
                status = RunFolder(run_dir).status()
            except UserError:
                status = None
        log_text = tail_text(Path(job.log)) if job.log and Path(job.log).is_file() else ""
        if status is None and job.state == "cancelling":
            state, message = "ended", "cancelled before the run began"
        elif status is None and code not in (None, 0):
            state, message = "failed", _last_error(log_text) or f"exited with status {code}"
        elif status is None:
            state, message = ("failed" if job.kind == "start" else "ended"), _last_error(log_text) or "no run folder"
        else:
            state = "ended"
            message = f"run {status}" + (f" ({display_path(run_dir)})" if run_dir else "")
        self.store.update(job.id, ACTIVE, state=state, ended=now(), returncode=code, message=message)

    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a queued one leaves the queue, a running one gets SIGTERM (recorded preempted).

        Raises:
            UserError: When the job has already ended.
        """
        with self._lock:
            job = self.store.get(job_id)
            if job.state == "queued":
                self.store.update(job_id, ("queued",), state="removed", ended=now(), message="removed from the queue")
            elif job.state in ACTIVE:
                self.executor.cancel(job)
                self.store.update(job_id, ACTIVE, state="cancelling", message="stopping: saving a checkpoint")
            else:
                raise UserError(f"job {job_id} has already {job.state}")
            return self.store.get(job_id)

"""Long runs on shared machines: a signal stops a run cleanly, with a checkpoint and the command that continues it.

While a run trains (:class:`StopSignals`, entered by :func:`train.run.train` and
:func:`train.run.resume` around the whole run), each signal of ``checkpoint.signals``
only records a request to stop. :class:`PreemptionHook` turns it into the run's stop
request after the current optimiser step; the loop's per-step exchange makes every
process stop at the same step; the checkpoint hook writes ``last.pt`` with the
position inside the epoch; the manifest records the status; one line says how to
continue; and the process exits with ``128 + the signal's number`` (SIGINT:
``interrupted``, 130; the others: ``preempted``, e.g. 143 for SIGTERM, 138 for
SIGUSR1). A second signal while that checkpoint is written is reported and otherwise
ignored: the handler never raises, so nothing interrupts the write. The handlers are
those of the run only; the previous ones come back when it ends.

Under a Slurm batch job that may be requeued (:func:`common.slurm.current_job`), rank 0
of a run started with ``--auto-resume`` then requeues the job (``scontrol requeue``), the last thing before the run's status is
written: Slurm ends the job (its SIGTERM is only noted by the stopping run) and starts
the same script again, whose ``--auto-resume`` continues the run. The record says
whether the time limit was coming (the signal came within the job's grace time of it)
or the job was preempted, and the run folder links Slurm's output file as ``slurm.out``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from common import slurm
from common.run_folder import RunFolder, RunStatus, resume_command
from train.loop.hooks import Hook, RunState, Step


def stop_status(signum: int) -> RunStatus:
    """The run status a stop on this signal records: ``interrupted`` for SIGINT, else ``preempted``."""
    return RunStatus.INTERRUPTED if signum == signal.SIGINT else RunStatus.PREEMPTED


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    return signal.Signals(signum).name


class StopSignals:
    """For the duration of a ``with`` block, the signals ``names`` record a request to stop instead of acting.

    Handlers can only be installed in the main thread; elsewhere the block changes nothing.

    Args:
        names: Signal names, e.g. ``("SIGTERM", "SIGINT")``.
        announce: Write a line to stderr when a signal arrives (the main process).

    Attributes:
        received: The first signal's number, or None.
        count: Signals received so far.
    """

    def __init__(self, names: Sequence[str], announce: bool = True):
        self.signals = [getattr(signal, name) for name in names]
        self.announce = announce
        self.received: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """Record the signal; never raises (it may arrive in the middle of writing a checkpoint)."""
        self.count += 1
        first = self.received is None
        if first:
            self.received = signum
        if self.announce:
            text = ("stopping after this optimiser step, with a checkpoint" if first
                    else "already stopping: the checkpoint is being written, wait for it")
            os.write(2, f"\n{signal_name(signum)}: {text}\n".encode())


CANCELLED_STATES = ("CANCELLED", "COMPLETING")
"""Job states of a cancelled job (``scancel``) while its processes stop: not requeued. A time limit's or a
preemption's signal comes while the job is ``RUNNING`` (or ``PREEMPTED``), and those are."""


class PreemptionHook(Hook):
    """Turns a signal into the run's stop request, and says how to continue the stopped run.

    Args:
        signals: The run's signal handlers (entered around the whole run).
        folder: The run folder.
        log: The run's logger.
        auto_resume: Started by ``--auto-resume`` (the same command continues it).
        job: The Slurm batch job rank 0 runs in (None: not under Slurm, or another rank).
    """

    name = "preemption"

    def __init__(self, signals: StopSignals, folder: RunFolder, log: logging.Logger, auto_resume: bool = False,
                 job: slurm.SlurmJob | None = None):
        self.signals, self.folder, self.log, self.auto_resume = signals, folder, log, auto_resume
        self.job = job
        self._read_at = time.monotonic()

    def before_run(self, run: RunState) -> None:
        """Under Slurm: say which job this is, and link its output file into the run folder."""
        if self.job is None:
            return
        self.log.info("Slurm job %s (requeued %d time(s))%s", self.job.job_id, self.job.restarts,
                      f", output {self.job.stdout}" if self.job.stdout else "")
        link = self.folder.path / "slurm.out"
        if not (self.job.stdout and Path(self.job.stdout).is_file()):
            return
        try:
            if link.is_symlink() and os.readlink(link) != self.job.stdout:
                link.unlink()  # a new job continues the run: its output is the one to follow
            if not link.is_symlink():
                link.symlink_to(self.job.stdout)
        except OSError as error:  # e.g. a file system without links: the manifest still names the file
            self.log.warning("could not link %s to %s: %s", link, self.job.stdout, error.strerror or error)

    def after_step(self, run: RunState, step: Step) -> None:
        """A signal received asks to stop after this step."""
        self._request(run)

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """A signal received asks to stop after this epoch (its checkpoints are written)."""
        self._request(run)

    def _request(self, run: RunState) -> None:
        signum = self.signals.received
        if signum is not None:
            run.request_stop(stop_status(signum), f"{stop_status(signum).value} by {signal_name(signum)}", signum)

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """After a stop on a signal: where the run stands into its result, and the command that continues it."""
        if self.job is not None:
            run.result["slurm"] = self.job.as_record()
        stop = run.stop
        if not (run.clean and stop is not None and stop.signal is not None and status.resumable):
            return
        trainer = run.trainer
        position = trainer.position
        where = (f"in epoch {trainer.epoch + 1} at step {position.done} of {trainer.steps_per_epoch}"
                 if position else f"after epoch {trainer.epoch}")
        run.result.update(signal=signal_name(stop.signal),
                          position={"epoch": trainer.epoch, "step_in_epoch": position.done if position else 0,
                                    "steps_per_epoch": trainer.steps_per_epoch})
        run.message = f"{status.value} by {signal_name(stop.signal)} {where}"
        command = resume_command(self.folder.path, trainer.processes.world_size)
        if self.auto_resume:
            command = f"the same command (--auto-resume), or {command}"
        self.log.info("%s: last.pt written; continue with: %s", run.message, command)
        if self.job is not None and self.job.batch and self.job.requeue and self.auto_resume:
            self._requeue(run)

    def _requeue(self, run: RunState) -> None:
        """Put the Slurm job back in the queue; the record says why it stopped and whether the requeue took.

        Only a run started with ``--auto-resume`` requeues its job (the requeued job must continue it, not start
        another), and not when the job was cancelled (``scancel``: a person stopped it). When Slurm requeued the
        job itself (a preemption with ``PreemptMode=REQUEUE``), that is recorded.
        """
        assert self.job is not None
        now = slurm.current_job() or replace(self.job, time_left=None if self.job.time_left is None else max(
            0.0, self.job.time_left - (time.monotonic() - self._read_at)))
        if now.state in CANCELLED_STATES:  # scancel: a person stopped it; it waits for them, not for the queue
            run.result["slurm"] = {**now.as_record(), "stopped_for": "cancelled", "requeued": False}
            self.log.info("Slurm job %s was cancelled (scancel): not requeued; submit it again to continue",
                          now.job_id)
            return
        reason = slurm.stop_reason(now, float(os.environ.get("IMAGEPIPE_SLURM_GRACE", slurm.GRACE_SECONDS)))
        failed = slurm.requeue(now.job_id)
        by = "this run"
        if failed is not None and (again := slurm.current_job()) is not None and again.state != "RUNNING":
            failed, by = None, "Slurm"  # already on its way back to the queue
        run.result["slurm"] = {**now.as_record(), "stopped_for": reason, "requeued": failed is None}
        if failed is None:
            self.log.info("Slurm job %s requeued by %s (%s): the same job script continues the run", now.job_id,
                          by, reason)
        else:
            self.log.warning("Slurm job %s not requeued (%s): %s; submit it again to continue", now.job_id,
                             reason, failed)

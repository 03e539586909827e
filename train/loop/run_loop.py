"""The run loop: epochs of optimiser steps, with the run's hooks called around them, until something stops it.

:class:`RunLoop` calls the hooks (:mod:`train.loop.hooks`) and nothing else: it knows
no checkpoint, tracker, signal, figure or log by name. What it does itself:

- every epoch: the trainer's steps (:meth:`train.loop.trainer.Trainer.epoch_steps`),
  ``before_step`` / ``after_step`` around each, then one exchange of the processes'
  stop requests (:meth:`train.loop.hooks.RunState.agree`) after each step but the
  epoch's last;
- at an epoch's end: validation (``after_validation_batch`` for each batch), the row
  (the trainer's metrics, then ``after_validation`` for the hooks' own), ``after_epoch``,
  and one blocking exchange;
- the NaN guard: a loss that becomes NaN or infinite (the trainer checks it) stops the
  run as ``diverged`` without ending the epoch;
- the end: ``after_run`` with the status, whether the run reached its last epoch, a
  hook asked it to stop (a resumable stop, ``interrupted`` or ``preempted``, is
  honoured only before the last epoch ends), or an error ended it (``interrupted`` for
  KeyboardInterrupt, ``failed`` for a problem with the input, ``crashed`` for the rest).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from common.errors import UserError
from common.limits import os_limit
from common.run_folder import RunStatus
from train.loop.hooks import Hooks, RunState, StopRequest
from train.loop.trainer import DivergedError, Trainer


@dataclass(frozen=True)
class RunOutcome:
    """How the loop ended.

    Attributes:
        status: The run's status.
        message: Its closing sentence.
        signal: The signal that stopped it, or None.
        result: What its manifest records of the end (``best``, ``last``, ...).
        history: The metrics rows of its epochs.
    """

    status: RunStatus
    message: str
    signal: int | None
    result: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class RunLoop:
    """Trains until the last epoch or a stop, calling the hooks.

    Args:
        trainer: The model being trained (restored already when resuming).
        hooks: The run's hooks.
        progress: Show a progress bar per epoch.
        history: The metrics rows of the epochs done before (a resumed run's).
        hook_states: The hooks' states from the checkpoint a run resumes from.
    """

    def __init__(self, trainer: Trainer, hooks: Hooks, progress: bool = False,
                 history: list[dict[str, Any]] | None = None, hook_states: dict[str, Any] | None = None):
        self.trainer, self.hooks, self.progress = trainer, hooks, progress
        self.run = RunState(trainer, hooks, history or [])
        self.epoch_row: dict[str, float] = {}
        if hook_states:
            hooks.load_state_dict(hook_states)

    def fit(self) -> RunOutcome:
        """Run ``before_run``, the epochs and ``after_run``; an error is raised again once ``after_run`` ran."""
        try:
            self.hooks.before_run(self.run)
            status = self._epochs()
        except BaseException as exc:
            limit = os_limit(exc)  # an operating-system limit: the run failed, for that reason
            status = (RunStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else
                      RunStatus.FAILED if isinstance(exc, UserError) or limit else RunStatus.CRASHED)
            with suppress(Exception):  # the error that ended the run is the one to report
                self._end(status, None if status is RunStatus.INTERRUPTED else limit or
                          str(exc) if status is RunStatus.FAILED else f"{type(exc).__name__}: {exc}")
            raise
        self.run.clean = True
        self._end(status)
        stop, run = self.run.stop, self.run
        return RunOutcome(status, run.message, stop.signal if stop else None, dict(run.result), list(run.history))

    def _end(self, status: RunStatus, error: str | None = None) -> None:
        run = self.run
        run.error = error
        run.result.update({"epochs_completed": self.trainer.epoch, "last": run.history[-1] if run.history else None,
                           "error": error})
        run.message = run.stop.reason if run.stop is not None else ""
        self.hooks.after_run(run, status)

    def _epochs(self) -> RunStatus:
        trainer = self.trainer
        while trainer.epoch < trainer.config.epochs:
            try:
                stop = self.train_epoch() or self._end_epoch()
            except DivergedError as exc:
                stop = self.run.stop = StopRequest(
                    RunStatus.DIVERGED, f"training diverged: {exc}; stopped without saving this epoch. Lower "
                    "optim.lr or set optim.grad_clip_norm.")
            if stop is not None and (stop.status.ended or trainer.epoch < trainer.config.epochs):
                return stop.status
        return RunStatus.FINISHED

    def train_epoch(self) -> StopRequest | None:
        """The epoch's steps, with the hooks; the agreed stop when one comes before its end, else None (then
        :attr:`epoch_row` holds the trainer's metrics of the epoch)."""
        run, hooks = self.run, self.hooks
        with self.trainer.epoch_steps(self.progress) as steps:
            for images, labels in steps:
                hooks.before_step(run)
                step = steps.step(images, labels)
                hooks.after_step(run, step)
                if not step.last and run.agree() is not None:
                    return run.stop
            self.epoch_row = steps.finish()
        return None

    def _end_epoch(self) -> StopRequest | None:
        """Validate, complete the epoch's row, send it to the hooks; the agreed stop, if any."""
        run, hooks, trainer = self.run, self.hooks, self.trainer
        validation = trainer.validate(partial(hooks.after_validation_batch, run))
        run.start_row({"epoch": trainer.epoch, "step": trainer.step, **self.epoch_row, **validation})
        hooks.after_validation(run)
        row = run.take_row()
        run.history.append(row)
        hooks.after_epoch(run, row)
        return run.agree(settle=True)

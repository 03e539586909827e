"""The hook interface: every concern around the training loop is a :class:`Hook`; the loop calls the list.

The run loop (:mod:`train.loop.run_loop`) knows no concern by name. It sends each
event to every hook of one :class:`Hooks` list, on every process:

=============================  ====================================================================
``before_run(run)``            once, before the first step (a resumed run: its state restored)
``before_step(run)``           before each optimiser step (the batch is ready)
``after_step(run, step)``      after each optimiser step (:class:`Step`)
``after_validation_batch``     each validation batch (:class:`ValidationBatch`)
``after_validation(run)``      validation is done; add the epoch's own metrics with :meth:`RunState.add_metrics`
``after_epoch(run, row)``      the epoch's complete row, as ``metrics.csv`` and the trackers get it
``after_run(run, status)``     once, whatever ended the run (its last epoch, a stop request, an error)
=============================  ====================================================================

``before_run`` goes through the list in order and ``after_run`` in reverse order, so
what is set up first is torn down last (as nested ``with`` blocks): the trackers open
before the run's record is written and close after its status is. The other events go
in list order. The list and the rules of its order are written where it is built
(:func:`train.run.build_hooks`).

A hook stops the run with one call, :meth:`RunState.request_stop` (a status and a
reason). After every optimiser step but an epoch's last the loop combines every
process's request in one exchange (:class:`train.process.distributed.StepAgreement`),
and at the end of each epoch once more, so all processes stop at the same step with
the same status. A hook that needs the processes to agree on something else each step
(the checkpoint hook: "a recovery checkpoint is due on the main process's clock")
names it in :attr:`Hook.votes` and rides the same exchange (:meth:`RunState.vote`,
:meth:`RunState.agreed`).

Each hook's :meth:`Hook.state_dict` is saved in every checkpoint under its
:attr:`Hook.name`, and :meth:`Hook.load_state_dict` gets it back when the run resumes,
so a resumed run continues with every hook as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from common.run_folder import RunStatus
from train.metrics import metric_spec
from train.process.distributed import StepAgreement

STOP_PRIORITY = (RunStatus.INTERRUPTED, RunStatus.PREEMPTED, RunStatus.STOPPED_EARLY, RunStatus.PRUNED,
                 RunStatus.PROFILED, RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.CRASHED)
"""The statuses a stop request may ask for, lowest priority first: when several are asked for at one step (on
one process or several), the last of these wins, so a run that ended by design is never left resumable."""


@dataclass(frozen=True)
class Step:
    """One optimiser step, as :meth:`Hook.after_step` gets it.

    Attributes:
        images: The batch as trained on ``(B, C, H, W)``: augmented, values 0..255, before normalisation.
        labels: ``(B,)`` class indices.
        loss: The batch's mean loss ``()``.
        logits: ``(B, K)``.
        lr: The step's learning rate (the schedule's, before per-group scales).
        step: Optimiser steps of the run so far, this one included.
        in_epoch: Optimiser steps of this epoch so far, this one included.
        last: Whether it is the epoch's last step (the loop then validates and ends the epoch).
    """

    images: torch.Tensor
    labels: torch.Tensor
    loss: torch.Tensor
    logits: torch.Tensor
    lr: float
    step: int
    in_epoch: int
    last: bool


@dataclass(frozen=True)
class ValidationBatch:
    """One validation batch: images ``(B, C, H, W)`` 0..255, labels ``(B,)``, logits ``(B, K)`` (float32)."""

    images: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor


@dataclass(frozen=True)
class StopRequest:
    """Why a run stops before its last epoch.

    Attributes:
        status: The status the run ends with (one of :data:`STOP_PRIORITY`).
        reason: A sentence for the console and :attr:`train.run.RunResult.message` ("" when another process
            asked and this one does not know why).
        signal: The signal that asked for it, or None.
    """

    status: RunStatus
    reason: str = ""
    signal: int | None = None


class Hook:
    """One concern around the training loop; every event does nothing unless a subclass says otherwise.

    Attributes:
        name: The key of its state in checkpoints (unique in a list).
        votes: Flags it needs every process to agree on at each step (see :meth:`RunState.vote`).
    """

    name: str = "hook"
    votes: tuple[str, ...] = ()

    def before_run(self, run: RunState) -> None:
        """Once, before the first step."""

    def before_step(self, run: RunState) -> None:
        """Before each optimiser step."""

    def after_step(self, run: RunState, step: Step) -> None:
        """After each optimiser step (the trainer's ``step`` already counts it; gradients are still there)."""

    def after_validation_batch(self, run: RunState, batch: ValidationBatch) -> None:
        """Each validation batch."""

    def after_validation(self, run: RunState) -> None:
        """Validation is done (every process calls it; a hook may combine what the processes saw)."""

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The epoch's complete metrics row (do not change it)."""

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """Once, at the end, whatever ended the run; :attr:`RunState.clean` says whether every process got here
        together (only then may a hook call the other processes)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this hook (plain values and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned."""


class Hooks:
    """The ordered list of a run's hooks; the loop sends every event through it.

    Args:
        hooks: The hooks, in the order their events go (``after_run`` in reverse).

    Raises:
        ValueError: When two hooks share a name.
    """

    def __init__(self, hooks: Iterable[Hook]):
        self.hooks = list(hooks)
        names = [hook.name for hook in self.hooks]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"hooks named {repeated} more than once; each hook's state needs a name of its own")

    @property
    def votes(self) -> tuple[str, ...]:
        """Every vote the hooks need, in list order."""
        return tuple(vote for hook in self.hooks for vote in hook.votes)

    def before_run(self, run: RunState) -> None:
        """See :meth:`Hook.before_run`."""
        for hook in self.hooks:
            hook.before_run(run)

    def before_step(self, run: RunState) -> None:
        """See :meth:`Hook.before_step`."""
        for hook in self.hooks:
            hook.before_step(run)

    def after_step(self, run: RunState, step: Step) -> None:
        """See :meth:`Hook.after_step`."""
        for hook in self.hooks:
            hook.after_step(run, step)

    def after_validation_batch(self, run: RunState, batch: ValidationBatch) -> None:
        """See :meth:`Hook.after_validation_batch`."""
        for hook in self.hooks:
            hook.after_validation_batch(run, batch)

    def after_validation(self, run: RunState) -> None:
        """See :meth:`Hook.after_validation`."""
        for hook in self.hooks:
            hook.after_validation(run)

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """See :meth:`Hook.after_epoch`."""
        for hook in self.hooks:
            hook.after_epoch(run, row)

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """Every hook's :meth:`Hook.after_run`, in reverse order; one that raises does not keep the others from
        theirs (the first error is raised once all ran)."""
        error: BaseException | None = None
        for hook in reversed(self.hooks):
            try:
                hook.after_run(run, status)
            except BaseException as exc:  # the run's status must still be written by the hooks after it
                error = error or exc
        if error is not None:
            raise error

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Each hook's state under its name (the hooks without state left out)."""
        return {hook.name: state for hook in self.hooks if (state := hook.state_dict())}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        """Give each hook its saved state (a hook without one keeps its fresh state)."""
        for hook in self.hooks:
            if hook.name in states:
                hook.load_state_dict(states[hook.name])


class RunState:
    """What the hooks of a run share: the trainer, the epochs so far, stop requests and votes, the outcome.

    Args:
        trainer: The :class:`train.loop.trainer.Trainer` (network, optimiser, data, position, processes).
        hooks: The run's hooks (for :meth:`hook_states` and the votes they need).
        history: The metrics rows of the epochs done so far (a resumed run's from its checkpoint).

    Attributes:
        trainer: The trainer.
        timer: The trainer's phase timer (:class:`train.loop.phase_timer.PhaseTimer`).
        history: The metrics rows of the completed epochs.
        stop: The stop every process agreed on, once there is one.
        clean: Whether the run ended at a point every process reached together (set before ``after_run``).
        error: The message of the error that ended the run, if one did.
        result: What the run's manifest records of how it ended; hooks add to it in ``after_run``.
        message: The run's closing sentence; hooks set it in ``after_run``.
    """

    def __init__(self, trainer: Any, hooks: Hooks, history: Sequence[dict[str, Any]] = ()):
        self.trainer = trainer
        self.timer = trainer.timer
        self._hooks = hooks
        self.history: list[dict[str, Any]] = list(history)
        self._requested: StopRequest | None = None
        self.stop: StopRequest | None = None
        self._votes = {name: 0 for name in hooks.votes}
        self._agreed = dict(self._votes)
        self._agreement = StepAgreement(trainer.processes)
        self._row: dict[str, Any] | None = None
        self.clean = False
        self.error: str | None = None
        self.result: dict[str, Any] = {}
        self.message = ""

    # -- stopping and voting ---------------------------------------------------------------
    def request_stop(self, status: RunStatus, reason: str = "", signal: int | None = None) -> None:
        """Ask the run to stop after this step (or at the end of this epoch), with ``status``.

        Raises:
            ValueError: For a status a run cannot stop with (``running``, ``finished``).
        """
        if status not in STOP_PRIORITY:
            raise ValueError(f"a run cannot stop as {status!r}; one of {[s.value for s in STOP_PRIORITY]}")
        request = StopRequest(status, reason, signal)
        if self._requested is None or STOP_PRIORITY.index(status) > STOP_PRIORITY.index(self._requested.status):
            self._requested = request

    def vote(self, name: str, value: bool) -> None:
        """Set this process's flag ``name`` (one of the hooks' :attr:`Hook.votes`) for the next exchange."""
        self._votes[name] = int(value)

    def agreed(self, name: str) -> bool:
        """Whether any process set flag ``name`` in the last exchange (in a single process: its own last vote)."""
        return bool(self._agreed[name])

    def agree(self, settle: bool = False) -> StopRequest | None:
        """Combine every process's stop request and votes: one exchange (see :class:`StepAgreement`).

        Args:
            settle: At the end of an epoch: combine now, blocking, instead of reading the previous exchange.

        Returns:
            The agreed stop (also kept in :attr:`stop`), or None to go on.
        """
        mine = self._requested
        code = STOP_PRIORITY.index(mine.status) + 1 if mine else 0
        flags = [code, (mine.signal or 0) if mine else 0, *self._votes.values()]
        combined = self._agreement.settle(flags) if settle else self._agreement.exchange(flags)
        self._agreed = dict(zip(self._votes, combined[2:]))
        if combined[0]:
            status = STOP_PRIORITY[combined[0] - 1]
            same = mine is not None and mine.status is status
            self.stop = mine if same else StopRequest(status, "", combined[1] or None)
        return self.stop

    # -- the epoch's row -------------------------------------------------------------------
    def start_row(self, values: dict[str, Any]) -> None:
        """Begin the epoch's metrics row with the loop's own values (epoch, step, training and validation)."""
        self._row = dict(values)

    def add_metrics(self, values: dict[str, Any]) -> None:
        """Add metrics to the epoch's row (in ``after_validation``): each must be declared in
        :mod:`train.metrics`, as a value already the same on every process (``global``) or the main process's
        own (``main``), and be finite or None (left empty in ``metrics.csv``).

        Raises:
            KeyError: For a metric no declaration names.
            ValueError: For one declared as reduced across processes (the trainer reduces those).
        """
        assert self._row is not None, "metrics are added after validation"
        for name, value in values.items():
            spec = metric_spec(name)
            if spec.reduce not in ("global", "main"):
                raise ValueError(f"{name} is declared reduced by {spec.reduce!r}; a hook adds global or main values")
            if value is not None and math.isfinite(value):
                self._row[name] = value

    def take_row(self) -> dict[str, Any]:
        """The epoch's complete row (the row is closed)."""
        row, self._row = self._row or {}, None
        return row

    def hook_states(self) -> dict[str, dict[str, Any]]:
        """Every hook's state, for a checkpoint."""
        return self._hooks.state_dict()

"""Long runs on shared machines: stop cleanly on a signal, and write recovery checkpoints inside epochs.

While a run trains (:class:`RunGuard`, entered by :class:`train.run.TrainingRun`), each
signal of ``checkpoint.signals`` only records a request to stop: after the current
optimiser step every process agrees on it (:class:`train.process.distributed.StepAgreement`),
``last.pt`` is written with the position inside the epoch, the manifest records the
status, one line says how to continue, and the process exits with
``128 + the signal's number`` (SIGINT: ``interrupted``, 130; the others:
``preempted``, e.g. 143 for SIGTERM, 138 for SIGUSR1). A second signal while that
checkpoint is written is reported and otherwise ignored: the handler never raises, so
nothing interrupts the write. The handlers are those of the run only; the previous
ones come back when it ends.

Recovery checkpoints (``checkpoint.every_minutes``, ``checkpoint.every_steps``) write
the same ``last.pt`` during long epochs, so a SIGKILL or a lost node costs at most that
much training; each is logged with its cost, and a warning says when they take more
than :data:`COST_WARNING` of the training time.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from train.config import CheckpointConfig
from train.process.distributed import Processes, StepAgreement

COST_WARNING = 0.05
"""Share of the training time between two recovery checkpoints above which their cost is worth a warning."""


def stop_status(signum: int) -> str:
    """The run status a stop on this signal records: ``interrupted`` for SIGINT, else ``preempted``."""
    return "interrupted" if signum == signal.SIGINT else "preempted"


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


class RunGuard:
    """Decides, after every optimiser step, whether to stop the run there or write a recovery checkpoint.

    Every process calls :meth:`after_step` after each step and :meth:`at_epoch_end`
    after each epoch's checkpoint; their answers agree on every process.

    Args:
        settings: ``checkpoint.every_minutes``, ``every_steps`` and ``signals``.
        processes: This process's rank and the world size.
        save: Writes ``last.pt`` at the current position (called on every process;
            only the main one writes); returns the seconds it took.
        log: The run's logger.
        clock: Seconds, monotonic (a parameter for tests).
    """

    def __init__(self, settings: CheckpointConfig, processes: Processes, save: Callable[[], float],
                 log: logging.Logger, clock: Callable[[], float] = time.monotonic):
        self.signals = StopSignals(settings.signals, announce=processes.is_main)
        self.agreement = StepAgreement(processes)
        self.every_seconds = settings.every_minutes * 60.0
        self.every_steps = settings.every_steps
        self.is_main = processes.is_main
        self.save, self.log, self.clock = save, log, clock
        self.last_save = clock()
        self.stop_signal: int | None = None
        self.warned = False

    def __enter__(self) -> RunGuard:
        self.last_save = self.clock()
        self.signals.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.signals.__exit__(*exc_info)

    def after_step(self, step: int) -> bool:
        """After optimiser step ``step`` (counted over the run): True to stop here (``last.pt`` is written).

        A recovery checkpoint is written when ``every_steps`` divides ``step`` or when
        ``every_minutes`` passed on the main process's clock since the last write.
        """
        timed = self.is_main and self.every_seconds > 0 and self.clock() - self.last_save >= self.every_seconds
        signum, due = self.agreement.exchange([self.signals.received or 0, int(timed)])
        if signum:
            self.stop_signal = signum
            self.save()
            return True
        if due or (self.every_steps > 0 and step % self.every_steps == 0):
            since = self.clock() - self.last_save
            self._check_cost(self.save(), since)
            self.last_save = self.clock()
        return False

    def at_epoch_end(self) -> bool:
        """After an epoch's checkpoint: True when a signal asks to stop (every process agrees)."""
        signum, _ = self.agreement.settle([self.signals.received or 0, 0])
        self.last_save = self.clock()
        if signum:
            self.stop_signal = signum
        return bool(signum)

    def _check_cost(self, seconds: float, since: float) -> None:
        if self.is_main and not self.warned and since > 0 and seconds > COST_WARNING * since:
            self.warned = True
            self.log.warning("recovery checkpoints take %.0f%% of the training time (%.0f ms each, every %.1f s); "
                             "raise checkpoint.every_minutes or checkpoint.every_steps", 100 * seconds / since,
                             1000 * seconds, since)

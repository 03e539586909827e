"""Where a run's time goes: a cheap phase timer, and the breakdown it gives.

:class:`PhaseTimer` measures the phases of :data:`train.metrics.TIMED_PHASES`
with ``time.perf_counter`` (a context manager per phase, an iterator wrapper for the
data wait). On the CPU every step is timed; on a GPU, whose work runs asynchronously,
one step in ``every`` synchronises the device at its phase boundaries and the step
phases are computed from those steps (the others run without synchronising). While
``torch.profiler`` records (``train --profile``), every phase is also a
``record_function`` range named ``phase:<name>``, so the trace shows the same phases.

:func:`breakdown` turns the measured seconds into fractions of the time (pure, so
it is tested with given numbers); :mod:`train.watch.time_breakdown` records them per
epoch and names the bottleneck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from train.metrics import TIMED_PHASES

PHASE_LABELS = {"data_wait": "waiting for data", "copy": "host-to-device copy", "augment": "augmentation",
                "forward": "forward", "backward": "backward", "optimizer": "optimiser", "validation": "validation",
                "logging": "logging", "checkpoint": "checkpointing", "other": "other"}
"""How each phase is named in a printed breakdown."""

STEP_PHASES = ("data_wait", "copy", "augment", "forward", "backward", "optimizer", "logging")
"""Phases that happen inside a training step (the others happen between epochs)."""


class _Phase:
    """The context manager of one phase (made once per phase name and reused)."""

    __slots__ = ("timer", "name", "label", "started", "range")

    def __init__(self, timer: PhaseTimer, name: str):
        self.timer, self.name, self.label = timer, name, f"phase:{name}"
        self.started, self.range = 0.0, None

    def __enter__(self) -> None:
        timer = self.timer
        if timer.synchronize is not None and timer.exact:
            timer.synchronize()
        if timer.ranges:
            from torch.profiler import record_function

            self.range = record_function(self.label)
            self.range.__enter__()
        self.started = timer.clock()

    def __exit__(self, *exc: Any) -> None:
        timer = self.timer
        if timer.synchronize is not None and timer.exact:
            timer.synchronize()
        timer.add(self.name, timer.clock() - self.started)
        if self.range is not None:
            self.range.__exit__(*exc)
            self.range = None


class _Idle:
    """A phase that measures nothing (the timer of a run nobody watches)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_IDLE = _Idle()


class PhaseTimer:
    """Seconds spent in each phase since the last :meth:`take`.

    Args:
        enabled: False makes every phase a no-op (nothing is measured).
        synchronize: Waits for the device (``torch.cuda.synchronize``) on a GPU; None on the CPU.
        every: On a GPU, synchronise and time the phases of one step in this many.
        clock: Seconds, monotonic (``time.perf_counter``; tests give their own).

    Attributes:
        exact: Whether the current step's phases are being measured.
        ranges: Whether phases are also profiler ranges (set while ``torch.profiler`` records).
    """

    def __init__(self, enabled: bool = True, synchronize: Any = None, every: int = 1,
                 clock: Callable[[], float] = time.perf_counter):
        self.enabled = enabled
        self.clock = clock
        self.synchronize = synchronize
        self.every = 1 if synchronize is None else max(1, every)
        self.ranges = False
        self.exact = True
        self._phases = {name: _Phase(self, name) for name in TIMED_PHASES}
        self._steps = 0
        self._counted = 0
        self._in_step = False
        self._step_started = 0.0
        self._reset()

    def _reset(self) -> None:
        self.step_seconds = dict.fromkeys(TIMED_PHASES, 0.0)  # phases of exactly timed steps
        self.between_seconds = dict.fromkeys(TIMED_PHASES, 0.0)  # phases outside steps
        self.exact_step_seconds = 0.0
        self.all_step_seconds = 0.0
        self.exact_steps = 0
        self.since = self.clock()

    def phase(self, name: str) -> Any:
        """A context manager timing ``name`` (one of :data:`TIMED_PHASES`)."""
        return self._phases[name] if self.enabled else _IDLE

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` for phase ``name`` (in the current step, or between steps)."""
        if not self._in_step:
            self.between_seconds[name] += seconds
        elif self.exact:
            self.step_seconds[name] += seconds

    def batches(self, items: Iterable[Any]) -> Iterator[Any]:
        """The items of ``items``; each one's wait starts a step and counts as ``data_wait``."""
        if not self.enabled:
            yield from items
            return
        iterator = iter(items)
        while True:
            self._begin_step()
            try:
                with self._phases["data_wait"]:
                    item = next(iterator)
            except StopIteration:
                self._in_step = False  # the wait for the end of the data was no step
                return
            yield item

    def _begin_step(self) -> None:
        self.exact = self.exact_steps == 0 or self._steps % self.every == 0  # the first of each stretch, at least
        self._in_step = True
        if self.synchronize is not None and self.exact:
            self.synchronize()
        self._step_started = self.clock()

    def end_step(self) -> None:
        """Close the current step (called after its optimiser step and logging)."""
        if not self.enabled or not self._in_step:
            return
        if self.synchronize is not None and self.exact:
            self.synchronize()
        seconds = self.clock() - self._step_started
        self.all_step_seconds += seconds
        if self.exact:
            self.exact_step_seconds += seconds
            self.exact_steps += 1
        self._steps += 1
        self._in_step = False
        self.exact = True  # phases between steps are always measured

    def take(self) -> Breakdown:
        """The breakdown since the last call (or since the timer was made), then start again."""
        total = self.clock() - self.since
        scale = self.all_step_seconds / self.exact_step_seconds if self.exact_step_seconds > 0 else 0.0
        seconds = {name: self.step_seconds[name] * scale + self.between_seconds[name] for name in TIMED_PHASES}
        steps, self._counted = self._steps - self._counted, self._steps
        self._reset()
        return breakdown(seconds, total, steps)


@dataclass(frozen=True)
class Breakdown:
    """Where the time of a stretch of training went.

    Attributes:
        seconds: Seconds per phase (:data:`TIMED_PHASES`).
        total: Wall time of the stretch, in seconds.
        steps: Optimiser steps in it.
    """

    seconds: Mapping[str, float]
    total: float
    steps: int

    @property
    def fractions(self) -> dict[str, float]:
        """Each phase's share of :attr:`total`, and ``other`` for the rest (never below 0)."""
        shares = {name: (self.seconds.get(name, 0.0) / self.total if self.total > 0 else 0.0)
                  for name in TIMED_PHASES}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        return shares

    def columns(self) -> dict[str, float]:
        """The ``time/<phase>_fraction`` values of a ``metrics.csv`` row."""
        return {f"time/{name}_fraction": round(share, 4) for name, share in self.fractions.items() if name != "other"}

    def lines(self) -> list[str]:
        """One line per phase: label and share of the time."""
        return [f"  {PHASE_LABELS[name]:<20} {share:6.1%}" for name, share in self.fractions.items()]


def breakdown(seconds: Mapping[str, float], total: float, steps: int = 0) -> Breakdown:
    """A :class:`Breakdown` from seconds per phase and the wall time they were part of."""
    return Breakdown({name: float(seconds.get(name, 0.0)) for name in TIMED_PHASES}, float(total), steps)

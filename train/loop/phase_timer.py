"""Where a run's time goes: a cheap phase timer, the breakdown it gives, and a verdict in one sentence.

:class:`PhaseTimer` measures the phases of :data:`common.run_folder.TIMED_PHASES`
with ``time.perf_counter`` (a context manager per phase, an iterator wrapper for the
data wait). On the CPU every step is timed; on a GPU, whose work runs asynchronously,
one step in ``every`` synchronises the device at its phase boundaries and the step
phases are computed from those steps (the others run without synchronising). While
``torch.profiler`` records (``train --profile``), every phase is also a
``record_function`` range named ``phase:<name>``, so the trace shows the same phases.

:func:`breakdown` turns the measured seconds into fractions of the time;
:func:`verdict` turns fractions into one sentence saying what bounds the run and
what to do. Both are pure, so they are tested with given numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from common.run_folder import TIMED_PHASES
from train.watch.system_figures import STARVED

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


INPUT_ADVICE = {
    "decoded per batch": "pack the data set (pipenv run pack) or raise data.num_workers",
    "pack": "hold the pack in memory (data.in_memory=true) if it fits, or keep it on a faster disk",
    "memory": "the batches come from memory, so look for another process using the disk or the CPU",
}
"""What to do about waiting for data, by where the batches come from."""


@dataclass(frozen=True)
class VerdictContext:
    """What the verdict needs to know besides the breakdown.

    Attributes:
        device: ``cpu`` or ``cuda``.
        data_source: Where training batches come from (``decoded per batch``, ``pack, read per batch``, ``... in memory``).
        cpu_wait_fraction: Share of the time the training threads waited for a free CPU core (None when unknown).
        threads: The process's intra-op threads.
    """

    device: str = "cpu"
    data_source: str = "decoded once, in memory"
    cpu_wait_fraction: float | None = None
    threads: int = 1


def verdict(shares: Mapping[str, float], context: VerdictContext = VerdictContext()) -> str:
    """One sentence: what bounds the run, by how much, and what to do.

    Args:
        shares: Fractions of the time per phase (:attr:`Breakdown.fractions`).
        context: Device, data source and CPU contention.

    Returns:
        E.g. ``input-bound: 62% of each step waits for data; pack the data set (pipenv run pack) or raise
        data.num_workers``.
    """
    wait = context.cpu_wait_fraction
    if wait is not None and wait >= STARVED:
        return (f"CPU-starved: the {context.threads} training thread(s) waited for a free core {wait:.0%} of the "
                "time, so every phase is slower than it should be; run it alone, or give it fewer threads "
                "(--threads 1) while another busy process shares the machine")
    def get(*names: str) -> float:
        return sum(shares.get(name, 0.0) for name in names)

    source = context.data_source
    advice = INPUT_ADVICE["decoded per batch" if "decoded per batch" in source else
                          "pack" if "pack" in source and "read per batch" in source else "memory"]
    candidates = [
        (get("data_wait"), 0.3, f"input-bound: {get('data_wait'):.0%} of each step waits for data; {advice}"),
        (get("copy"), 0.2, f"copy-bound: {get('copy'):.0%} of each step copies batches to the GPU; keep the data "
                           "on the GPU (data.keep_on_gpu=always) if it fits"),
        (get("augment"), 0.25, f"augmentation-bound: {get('augment'):.0%} of each step augments the batch; "
                               "lighten the augment.* settings or train on a GPU, where augmentation is cheap"),
        (get("logging"), 0.1, f"logging-bound: {get('logging'):.0%} of the time goes to logging and figures; "
                              "raise log.every_steps and log.figures_every, or turn log.histograms_every_steps off"),
        (get("checkpoint"), 0.15, f"checkpoint-bound: {get('checkpoint'):.0%} of the time writes checkpoints; keep "
                                  "fewer (checkpoint.top_k), or put the run folder on a faster disk"),
        (get("validation"), 0.35, f"validation-bound: {get('validation'):.0%} of the time validates; use a "
                                  "smaller validation list (data.val_split)"),
        (get("optimizer"), 0.3, f"optimiser-bound: {get('optimizer'):.0%} of each step updates the weights; a "
                                "larger batch (batch_size) spreads this cost over more samples"),
    ]
    found = [(share, sentence) for share, threshold, sentence in candidates if share >= threshold]
    if found:
        return max(found)[1]
    compute = get("forward", "backward")
    if context.device == "cuda":
        todo = "a larger batch, amp=true, channels_last=true or compile=true may make each step faster"
    else:
        todo = "train on a GPU (--device cuda), or use a smaller network or input size"
    return f"compute-bound: {compute:.0%} of each step is the forward and backward pass; {todo}"

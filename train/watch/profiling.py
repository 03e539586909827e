"""``train --profile [N]``: ``torch.profiler`` over N steps after a warm-up, a breakdown and the bottleneck.

The profiler starts after :data:`WARMUP_STEPS` steps (caches, allocator and
autotuning settle first) and records ``N`` steps, including whatever happens between
them (validation, checkpoints and figures at an epoch's end). Every phase of
:mod:`train.loop.phase_timer` is a ``record_function`` range (``phase:forward``, ...) and the
device is synchronised at phase boundaries while it records, so the phases'
durations are the wall time each one takes. Then :class:`ProfilerHook` asks the run to
stop (status ``profiled``) and prints:

- the share of the time in each phase (waiting for data, host-to-device copy,
  augmentation, forward, backward, optimiser, validation, logging, checkpointing),
  summed from the trace's ``phase:*`` ranges;
- the operators with the most time of their own;
- one sentence: what bounds the run and what to do (:func:`train.watch.time_breakdown.bottleneck`).

The trace (``profile/*.pt.trace.json``: Chrome trace format) opens in Perfetto
(https://ui.perfetto.dev) and in TensorBoard's profiler plugin (``torch-tb-profiler``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from common.files import atomic_write_text, write_json
from common.paths import display_path
from common.run_folder import RunFolder, RunStatus
from train.loop.hooks import Hook, RunState, Step
from train.loop.phase_timer import Breakdown, PhaseTimer, breakdown
from train.metrics import TIMED_PHASES
from train.watch.system_figures import cpu_figures, read_cpu
from train.watch.time_breakdown import BottleneckContext, bottleneck

WARMUP_STEPS = 5
"""Steps trained before the profiler starts."""

DEFAULT_STEPS = 30
"""Steps ``train --profile`` records when no number is given."""

TOP_OPERATORS = 10
"""Operators listed in the report."""


@dataclass(frozen=True)
class ProfileReport:
    """What ``train --profile`` found.

    Attributes:
        breakdown: Share of the time per phase over the profiled steps.
        operators: ``(name, self seconds, calls)`` of the operators with the most time of their own.
        bottleneck: One sentence: what bounds the run and what to do.
        trace: The trace file.
        device: The training device.
        first_step: The first profiled step (1-based, counting from the start of this process's training).
        cpu_wait_fraction: Share of their ready time the threads waited for a core, when known.
    """

    breakdown: Breakdown
    operators: list[tuple[str, float, int]]
    bottleneck: str
    trace: str
    device: str
    first_step: int
    cpu_wait_fraction: float | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The report as the console shows it."""
        steps, total = self.breakdown.steps, self.breakdown.total
        lines = [f"profile of {steps} steps (steps {self.first_step}-{self.first_step + steps - 1} after a warm-up of "
                 f"{self.first_step - 1}) on {self.device}: {total:.2f} s, {1000 * total / max(1, steps):.1f} ms per step",
                 "time per phase:", *self.breakdown.lines()]
        if self.cpu_wait_fraction is not None:
            lines.append(f"  (threads waited for a free CPU core {self.cpu_wait_fraction:.0%} of their ready time)")
        lines.append("top operators (own time per step, share of the time, calls per step):")
        lines += [f"  {name[:60]:<60} {1000 * seconds / max(1, steps):8.2f} ms {seconds / total if total else 0:6.1%}"
                  f" {calls / max(1, steps):7.1f}" for name, seconds, calls in self.operators]
        lines += [*self.notes, f"bottleneck: {self.bottleneck}",
                  f"trace: {self.trace} (open it in https://ui.perfetto.dev or TensorBoard's profiler plugin)"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``profile/summary.json``)."""
        return {"steps": self.breakdown.steps, "first_step": self.first_step, "seconds": self.breakdown.total,
                "device": self.device, "fractions": self.breakdown.fractions, "cpu_wait_fraction": self.cpu_wait_fraction,
                "operators": [{"name": n, "self_seconds": s, "calls": c} for n, s, c in self.operators],
                "bottleneck": self.bottleneck, "trace": self.trace}


class StepProfiler:
    """Profiles ``steps`` optimiser steps after :data:`WARMUP_STEPS`; :meth:`step_end` says when they are done.

    Every process counts steps so that all stop at the same one; only the main process records and reports.

    Args:
        steps: Steps to record.
        timer: The run's phase timer (its phases become profiler ranges while recording).
        folder: Where ``profile/`` goes.
        context: Device, data source and threads, for naming the bottleneck.
        record: Whether this process records (the main one).
    """

    def __init__(self, steps: int, timer: PhaseTimer, folder: RunFolder, context: BottleneckContext, record: bool,
                 warmup: int = WARMUP_STEPS):
        self.steps, self.timer, self.folder, self.context, self.record = steps, timer, folder, context, record
        self.warmup = warmup
        self.seen = 0
        self.profile: Any = None
        self.started = 0.0
        self.cpu_before: Any = None
        self.report: ProfileReport | None = None

    @property
    def recording(self) -> bool:
        """Whether the profiled steps are under way."""
        return self.seen > self.warmup and self.report is None

    def step_end(self) -> bool:
        """Count a finished step; start, advance or finish the recording; True once the profiled steps are done."""
        self.seen += 1
        if self.seen == self.warmup:
            self._start()
        elif self.recording:
            if self.profile is not None:
                self.profile.step()
            if self.seen == self.warmup + self.steps:
                self.finish()
                return True
        return False

    def _start(self) -> None:
        self.timer.every, self.timer.ranges = 1, self.record  # every step timed exactly, phases as ranges
        if self.record:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.context.device == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            else:  # Kineto would log "gpuGetDeviceCount failed" as an error on a machine without a GPU
                os.environ.setdefault("KINETO_LOG_LEVEL", "5")
            self.profile = torch.profiler.profile(activities=activities, record_shapes=False, with_stack=False)
            self.profile.start()
        self.timer.take()  # the timer's stretch starts with the recording
        self.cpu_before, self.started = read_cpu(), time.perf_counter()

    def finish(self) -> ProfileReport | None:
        """Stop recording (early, when the run ends first) and write the trace and the report; None if nothing ran."""
        if self.report is not None or self.seen <= self.warmup:
            if self.profile is not None and self.report is None:  # started at the warm-up's last step: nothing ran
                self.profile.stop()
                self.profile, self.timer.ranges = None, False
            return self.report
        steps = self.seen - self.warmup
        self.timer.ranges = False
        if not self.record:
            self.report = ProfileReport(breakdown({}, 0.0, steps), [], "", "", self.context.device, self.warmup + 1)
            return self.report
        self.profile.stop()
        total = time.perf_counter() - self.started
        wait = cpu_figures(self.cpu_before, read_cpu())["wait_fraction"]
        events = self.profile.key_averages()
        phases = {name: _range_seconds(events, f"phase:{name}") for name in TIMED_PHASES}
        shares = breakdown(phases, total, steps)
        context = BottleneckContext(self.context.device, self.context.data_source, wait, self.context.threads)
        trace = self._export()
        notes = [] if steps == self.steps else [f"(the run ended after {steps} of the {self.steps} steps asked for)"]
        self.report = ProfileReport(shares, top_operators(events, self.context.device == "cuda"),
                                    bottleneck(shares.fractions, context), display_path(trace), self.context.device,
                                    self.warmup + 1, wait, notes)
        atomic_write_text(self.folder.profile_dir / "summary.txt", self.report.text() + "\n")
        write_json(self.folder.profile_dir / "summary.json", self.report.to_dict())
        return self.report

    def _export(self) -> Any:
        """The Chrome trace, named as TensorBoard's profiler plugin expects (``<worker>.<time>.pt.trace.json``)."""
        self.folder.profile_dir.mkdir(parents=True, exist_ok=True)
        path = self.folder.profile_dir / f"{socket.gethostname()}_{time.time_ns()}.pt.trace.json"
        self.profile.export_chrome_trace(str(path))
        json.loads(path.read_text(encoding="utf-8"))  # a trace that does not parse is an error here, not in the viewer
        return path


def _range_seconds(events: Any, key: str) -> float:
    """Total wall time of the ``record_function`` range ``key`` (0 when it never ran)."""
    for event in events:
        if event.key == key:
            return event.cpu_time_total / 1e6
    return 0.0


def top_operators(events: Any, cuda: bool, count: int = TOP_OPERATORS) -> list[tuple[str, float, int]]:
    """The operators with the most time of their own (device time on a GPU), without the phase and step ranges."""
    def own(event: Any) -> float:
        return (event.self_device_time_total if cuda else event.self_cpu_time_total) / 1e6

    operators = [event for event in events if not event.key.startswith(("phase:", "ProfilerStep"))]
    ranked = sorted(operators, key=own, reverse=True)[:count]
    return [(event.key, own(event), int(event.count)) for event in ranked]


class ProfilerHook(Hook):
    """``train --profile``: profiles the steps after the warm-up, then asks the run to stop (``profiled``) and
    prints the report; a run that ends first gets the report of the steps it profiled, or a line saying why
    there is none.

    Comes after the time breakdown's hook: a step is counted once its phases are closed.

    Args:
        steps: Steps to profile.
        folder: The run folder (``profile/``).
        context: Device, data source and threads, for naming the bottleneck.
        log: The run's logger.
        is_main: Whether this process records and reports (rank 0).
    """

    name = "profiler"

    def __init__(self, steps: int, folder: RunFolder, context: BottleneckContext, log: Any, is_main: bool):
        self.steps, self.folder, self.context, self.log, self.is_main = steps, folder, context, log, is_main
        self.profiler: StepProfiler | None = None

    def before_run(self, run: RunState) -> None:
        """Start counting steps (every process counts, so all stop at the same one); a run shorter than the warm-up
        and the profiled steps warms up for fewer steps, so that it is profiled all the same."""
        trainer = run.trainer
        total = trainer.steps_per_epoch * max(0, trainer.config.epochs - trainer.epoch)
        warmup = min(WARMUP_STEPS, max(1, total - self.steps))
        if warmup < WARMUP_STEPS and self.is_main:
            self.log.info("profile: the run has %d step(s), so the warm-up is %d step(s), not %d", total, warmup,
                          WARMUP_STEPS)
        self.profiler = StepProfiler(self.steps, run.timer, self.folder, self.context, self.is_main, warmup)

    def after_step(self, run: RunState, step: Step) -> None:
        """Count the step; once the profiled steps are done, ask the run to stop."""
        if self.profiler is not None and self.profiler.step_end():
            summary = display_path(self.folder.profile_dir / "summary.txt")
            run.request_stop(RunStatus.PROFILED, f"profiled {self.steps} steps; the breakdown and the bottleneck "
                                                 f"are above and in {summary}")

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """Print the report (finishing a recording the run's end cut short), or why there is none."""
        if self.profiler is None or not self.is_main:
            return
        report = self.profiler.finish()
        if report is not None:
            self.log.info("%s", report.text())
        else:
            self.log.warning("no profile: the run ended after %d step(s), before the warm-up of %d step(s) was over; "
                             "profile a longer run", self.profiler.seen, self.profiler.warmup)

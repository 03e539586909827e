"""System figures of a training process, per epoch: CPU, memory, GPU, and CPU starvation.

:class:`SystemMonitor` reads what the operating system already counts: CPU time of
the process (``os.times``), the time its threads were ready to run but waited for a
core (``/proc/self/task/*/schedstat`` on Linux), resident memory
(``/proc/self/status``), and on a GPU its utilisation (NVML, when ``nvidia-ml-py``
is installed) and peak memory. Decoding worker processes are not included.

:func:`oversubscription` is the pure rule that turns these into a warning when the
process gets much less CPU than its threads ask for. :class:`SystemFiguresHook` adds
the figures to each epoch's row (``system/*``) and says the warning.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.loop.hooks import Hook, RunState, Step
from common import limits

TASKS = Path("/proc/self/task")
"""One folder per thread of this process (Linux)."""

STARVED = 0.25
"""Share of their ready time the threads may wait for a core before the run is called starved."""


@dataclass(frozen=True)
class CpuSample:
    """Counters of this process at one moment.

    Attributes:
        wall: ``time.perf_counter()``.
        cpu: User and system CPU seconds of all its threads.
        threads: Thread id -> ``(cpu ns, ns waited for a core)`` (empty where the system does not count it).
    """

    wall: float
    cpu: float
    threads: dict[int, tuple[int, int]]


def read_cpu() -> CpuSample:
    """The process's CPU counters now."""
    times = os.times()
    return CpuSample(time.perf_counter(), times.user + times.system, read_schedstat())


def read_schedstat() -> dict[int, tuple[int, int]]:
    """Thread id -> ``(ns on a CPU, ns waiting on a run queue)`` from ``/proc/self/task/*/schedstat``; empty elsewhere."""
    found: dict[int, tuple[int, int]] = {}
    if not TASKS.is_dir():
        return found
    for task in TASKS.iterdir():
        try:
            running, waiting, _ = (task / "schedstat").read_text().split()
            found[int(task.name)] = (int(running), int(waiting))
        except (OSError, ValueError):  # the thread ended, or the kernel does not count
            continue
    return found


def cpu_figures(before: CpuSample, after: CpuSample) -> dict[str, float | None]:
    """``cores_used`` (CPU seconds per wall second) and ``wait_fraction`` (waiting for a core / ready time)."""
    wall = after.wall - before.wall
    cores_used = (after.cpu - before.cpu) / wall if wall > 0 else 0.0
    running = waiting = 0
    for tid, (cpu_ns, wait_ns) in after.threads.items():
        old_cpu, old_wait = before.threads.get(tid, (0, 0))
        running += max(0, cpu_ns - old_cpu)
        waiting += max(0, wait_ns - old_wait)
    ready = running + waiting
    return {"cores_used": cores_used, "wait_fraction": waiting / ready if ready else None}


def resident_gb() -> float:
    """Resident memory of the process now, in GB (the peak so far where ``/proc`` is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def oversubscription(wait_fraction: float | None, cores_used: float, threads: int, cores: int) -> str | None:
    """A warning when the process gets much less CPU than its threads ask for, saying what to do; else None.

    Args:
        wait_fraction: Share of their ready time the threads waited for a core (None when unknown).
        cores_used: CPU seconds per wall second the process got.
        threads: Its intra-op threads.
        cores: Cores available to it.
    """
    if threads > cores:
        return (f"{threads} intra-op threads on {cores} cores: the threads take turns on the cores and wait for "
                f"each other; use --threads {cores} (docs/training.md#thread-policy)")
    if wait_fraction is None or wait_fraction < STARVED:
        return None
    advice = (f"Run it alone, or give it fewer threads, e.g. --threads {threads // 2}" if threads > 1 else
              "Run it alone, or fewer processes per machine (it has one thread already)")
    return (f"CPU oversubscribed: the process got {cores_used:.1f} cores' worth of CPU while its threads waited "
            f"for a core {wait_fraction:.0%} of the time they were ready to run (another busy process shares the "
            f"{cores} cores). {advice} (docs/training.md#thread-policy)")


class SystemMonitor:
    """Per-epoch system figures of the training process.

    Args:
        device: The training device.
    """

    def __init__(self, device: Any):
        self.device = device
        self.cuda = device.type == "cuda"
        self.gpu_samples: list[float] = []
        self.gpu_note: str | None = None
        self.before = read_cpu()

    def sample_gpu(self) -> None:
        """Read the GPU's utilisation now (called every few steps; averaged per epoch)."""
        if not self.cuda or self.gpu_note is not None:
            return
        import torch

        try:
            self.gpu_samples.append(float(torch.cuda.utilization(self.device)))
        except Exception as exc:  # NVML missing or unsupported: say so once, keep training
            self.gpu_note = f"GPU utilisation not recorded ({type(exc).__name__}: {exc}); install nvidia-ml-py"

    def take(self) -> dict[str, float]:
        """The figures since the last call, as ``system/*`` columns (the GPU ones only on a GPU)."""
        after = read_cpu()
        cpu = cpu_figures(self.before, after)
        self.before = after
        row = {"system/cpu_cores_used": round(cpu["cores_used"], 3), "system/rss_gb": round(resident_gb(), 3)}
        if cpu["wait_fraction"] is not None:
            row["system/cpu_wait_fraction"] = round(cpu["wait_fraction"], 4)
        if self.cuda:
            import torch

            row["system/gpu_peak_memory_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 1e9, 3)
            torch.cuda.reset_peak_memory_stats(self.device)
            if self.gpu_samples:
                row["system/gpu_utilization"] = round(sum(self.gpu_samples) / len(self.gpu_samples), 1)
            self.gpu_samples = []
        return row


class SystemFiguresHook(Hook):
    """The system figures of each epoch into its row, the GPU's utilisation sampled every few steps, and a
    warning when the CPU is oversubscribed (said once; again only after it clearly cleared).

    Args:
        device: The training device.
        every: Steps between GPU utilisation samples (the step points).
        log: The run's logger.
        is_main: Whether this process samples the GPU and warns (rank 0).
    """

    name = "system_figures"

    def __init__(self, device: Any, every: int, log: logging.Logger, is_main: bool):
        self.monitor = SystemMonitor(device)
        self.every, self.log, self.is_main = every, log, is_main
        self.starved = False

    def after_step(self, run: RunState, step: Step) -> None:
        """Sample the GPU's utilisation at each step point."""
        if self.is_main and step.step % self.every == 0:
            self.monitor.sample_gpu()

    def after_validation(self, run: RunState) -> None:
        """The epoch's ``system/*`` figures into its row; the oversubscription warning."""
        import torch

        figures = self.monitor.take()
        run.add_metrics(figures)
        warning = oversubscription(figures.get("system/cpu_wait_fraction"), figures["system/cpu_cores_used"],
                                   torch.get_num_threads(), limits.cores())
        if warning and not self.starved and self.is_main:
            self.log.warning("%s", warning)
        wait = figures.get("system/cpu_wait_fraction")
        if warning or wait is None or wait < STARVED / 2:  # said once; said again only after it clearly cleared
            self.starved = warning is not None
        if self.monitor.gpu_note and self.is_main:
            self.log.warning("%s", self.monitor.gpu_note)
            self.monitor.gpu_note = ""  # said once; GPU utilisation stays off

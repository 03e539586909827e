"""The thread policy of a training process (docs/training.md, "Thread policy").

Measured on the 2-core development machine (``pipenv run bench train`` has the
case): with torch's defaults, a training run beside one other busy process fell to
2-30% of its speed alone, far below its fair half of the cores, because OpenMP's
worker threads spin at the end of every parallel operation while the thread they
wait for has lost its core to the other process. The policy:

- **OpenMP wait**: ``GOMP_SPINCOUNT=1000`` (spin about a microsecond, then sleep)
  instead of libgomp's 300,000. Set by ``python -m train`` before torch loads,
  unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is already set; it changes no
  result, only how idle threads wait.
- **Intra-op threads**: torch's default (one per core), unless ``--threads N``;
  when batches are decoded per batch on the CPU, the decoding workers get their
  cores: ``cores - data.num_workers`` threads (at least 1). The thread count takes
  part in the floating-point order, so it is logged and a resume should use the same.
- **Decode workers** run with one thread each (torch's default in DataLoader workers).

This module imports torch only inside functions: ``train/__main__.py`` calls
:func:`set_openmp_wait` before anything loads torch.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Container, MutableMapping

from common import limits

OPENMP_WAIT = {"GOMP_SPINCOUNT": "1000"}
"""Environment that makes idle OpenMP threads sleep soon (libgomp reads it when torch loads)."""

USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
"""Variables whose presence means the user chose the wait policy; the policy then leaves them alone."""


def set_openmp_wait(environ: MutableMapping[str, str] = os.environ, loaded: Container[str] = sys.modules) -> bool:
    """Apply the OpenMP wait policy to ``environ`` unless the user set one; True when it was applied.

    Call before torch is imported: libgomp reads the variables once, when it loads. When
    torch is loaded already (``loaded`` holds it: a test, a notebook) nothing is changed.
    """
    if "torch" in loaded or any(name in environ for name in USER_SETTINGS):
        return False
    environ.update(OPENMP_WAIT)
    return True


def describe_openmp_wait(environ: MutableMapping[str, str] = os.environ) -> str:
    """How idle OpenMP threads wait in this process, for the log."""
    chosen = {name: environ[name] for name in USER_SETTINGS if name in environ}
    if chosen == OPENMP_WAIT:
        return "idle OpenMP threads spin briefly, then sleep (GOMP_SPINCOUNT=1000)"
    if chosen:
        return "OpenMP waits as set: " + " ".join(f"{k}={v}" for k, v in chosen.items())
    return ("OpenMP waits as torch's default (long spinning; slow beside another busy process: start with "
            "`python -m train`, or set GOMP_SPINCOUNT=1000 before importing torch)")


def choose_threads(requested: int, default: int, cores: int, decode_workers: int) -> tuple[int, str]:
    """The intra-op thread count and why.

    Args:
        requested: ``--threads`` (0: choose).
        default: torch's default for this process.
        cores: Cores available to the process.
        decode_workers: Worker processes decoding batches beside the training threads (0 when none).

    Returns:
        ``(threads, reason)``.
    """
    if requested > cores:  # more would only wait for a core (and thousands exhaust the process's threads)
        return cores, f"--threads {requested} capped at the {cores} cores this process may run on"
    if requested > 0:
        return requested, "--threads"
    if decode_workers > 0:
        return max(1, cores - decode_workers), f"{cores} cores less {decode_workers} decoding worker(s)"
    return default, "torch's default, one per core"


@functools.cache
def torch_default_threads() -> int:
    """Torch's intra-op thread count as the process started, before any run changed it.

    Read once, so that a second run in the same process (a test, a notebook, a sweep)
    chooses from the same default as the first, not from what the first one set.
    """
    import torch

    return torch.get_num_threads()


def intra_op_threads(count: int | None = None) -> int:
    """Torch's intra-op thread count now; with ``count``, set it first (a run gives back what it found)."""
    import torch

    if count is not None and count != torch.get_num_threads():
        torch.set_num_threads(count)
    return torch.get_num_threads()


def apply_threads(requested: int, device_type: str, decode_workers: int) -> str:
    """Set torch's intra-op threads by the policy; returns the log line.

    Args:
        requested: ``--threads`` (0: choose).
        device_type: ``cpu`` or ``cuda``; decoding workers only take cores from a CPU run.
        decode_workers: Processes decoding batches (``data.num_workers`` when batches are decoded per batch).
    """
    import torch

    cores = limits.cores()
    workers = decode_workers if device_type == "cpu" else 0
    threads, reason = choose_threads(requested, torch_default_threads(), cores, workers)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return f"threads: {threads} intra-op ({reason}; {cores} cores available); {describe_openmp_wait()}"

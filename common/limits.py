"""Bounds on every resource a user can set or a file can claim, stated once.

A command reads files someone may have sent (a model card, an evaluation, a data
set) and options someone may have mistyped. Each resource they can claim has one
bound here, enforced by the one owner of that input (docs/robustness.md, "Resource
bounds", lists where):

- :data:`MAX_PIXELS`: pixels of an image the decoder opens, and of a network input
  (an input contract of 20000 x 20000 is refused as the decoder refuses the image).
- :data:`MAX_CLASSES`: classes of a data set, a model card or a ``predictions.csv``
  (the confusion matrices and their figures hold K x K cells).
- :data:`MAX_BOOTSTRAP`: bootstrap resamples (:data:`BOOTSTRAP_MEMORY` bounds the
  memory one batch of resamples needs).
- Threads: at most the cores this process may run on, four per core for image decoding
  (:func:`thread_count`: evaluation, prediction, packing; training's intra-op threads through its thread
  policy, capped at :func:`cores`).
- :data:`MAX_JSON_DEPTH`, :data:`MAX_YAML_DEPTH`, :data:`MAX_YAML_NODES`: nesting and
  alias expansion of every JSON and YAML text read (:mod:`common.files`).
- :data:`MAX_NAME_BYTES`: a name given for an output file or folder (``--name``).
- :data:`WALK_SECONDS`: how long a folder import may walk its source.
- :data:`MAX_GRID_PER_CLASS`: sample images per class in an inspection's grids.
"""

from __future__ import annotations

import errno
import logging
import os

log = logging.getLogger(__name__)

MAX_PIXELS = 89_478_485
"""Images with more pixels are refused as decompression bombs: Pillow's ``MAX_IMAGE_PIXELS``
default (about 9459 x 9459), where it starts warning. Also the largest network input (height x width)."""

MAX_CLASSES = 1000
"""Most classes a data set, a model or a result file may have. A confusion matrix holds K x K counts,
and the bootstrap's design K x K rows: at 1000 classes that is 8 MB per matrix; the 20,000 classes of a
hostile file would be 3.2 GB before any figure is drawn."""

MAX_BOOTSTRAP = 10_000
"""Most bootstrap resamples: percentile intervals at 95% settle within a few thousand."""

BOOTSTRAP_MEMORY = 2 << 30
"""Bytes one batch of bootstrap resamples may hold (the batch's resamples x the design's rows x 8)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays in a JSON text this project reads (its own files nest 5 deep)."""

MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and sequences in a YAML text."""

MAX_YAML_NODES = 10_000
"""Most nodes a YAML text may hold once its aliases are expanded (OmegaConf's own default limit), so an
alias bomb (``&a [*b, *b, ...]`` nested) is refused before anything walks it."""

MAX_NAME_BYTES = 120
"""Longest name (UTF-8 bytes) for an output file or folder: staging folders and temporary files add up to
about 120 bytes to it, and file systems allow 255."""

DECODE_THREADS_PER_CORE = 4
"""Image-decoding threads allowed per core: decoding waits for files as much as it computes."""

MAX_GRID_PER_CLASS = 64
"""Most sample images per class in an inspection's grids (``inspect-data --per-class``): a row of each class,
so the grid image stays a few thousand pixels wide whatever is asked."""

WALK_SECONDS = 600.0
"""How long a folder import may walk its source before it stops and says so."""


def cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_count(requested: int, option: str, per_core: int = 1) -> int:
    """Threads to use for ``requested`` (0: one per core), capped at ``per_core`` per core, saying so when capped.

    Args:
        requested: What the option asked for (at least 0).
        option: The option, named in the log line (``--threads``).
        per_core: Threads allowed per core: 1 for computing threads (onnxruntime), more for
            threads that mostly wait for files (:data:`DECODE_THREADS_PER_CORE`).

    Returns:
        ``requested`` (or the core count for 0), capped at ``per_core`` times the core count.
    """
    available = cores()
    if requested == 0:
        return available
    if requested > per_core * available:
        log.warning("%s %d: using %d, %sthe CPU cores this process may run on", option, requested,
                    per_core * available, f"{per_core} per core of " if per_core > 1 else "")
        return per_core * available
    return requested


OS_LIMITS = {
    errno.EMFILE: "too many open files for this process (raise it with `ulimit -n`, or use fewer --workers)",
    errno.ENFILE: "too many open files on this machine (close other programs, or use fewer --workers)",
    errno.EAGAIN: "no more processes or threads may start (raise `ulimit -u`, or use fewer --threads and "
                  "--workers)",
    errno.ENOMEM: "not enough memory (use a smaller --batch-size or fewer --workers)",
    errno.ELOOP: "too many levels of symbolic links (a link leads back to itself; remove it)",
}
"""The operating-system limits a command may meet, with what to do about each."""


def os_limit(exc: BaseException) -> str | None:
    """The one line that says which operating-system limit ``exc`` met and what to do, or None for other errors.

    Covers ``OSError`` with an errno of :data:`OS_LIMITS`, ``RuntimeError: can't start new thread`` (Python's word
    for EAGAIN when a thread cannot start) and ``MemoryError``.
    """
    if isinstance(exc, OSError) and exc.errno in OS_LIMITS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{OS_LIMITS[exc.errno]}"
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return OS_LIMITS[errno.EAGAIN]
    if isinstance(exc, MemoryError):
        return OS_LIMITS[errno.ENOMEM]
    return None

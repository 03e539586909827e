"""Every training metric, declared once: a run's ``metrics.csv`` columns and what each one means.

A declaration (:class:`common.run_folder.MetricSpec`) says how the metric is combined
across processes, whether ``checkpoint.monitor`` may name it and which way is better,
where ``curves.png`` draws it, and whether ``runs`` shows it. From here it flows to:

- the run's manifest (``metrics``), from which :class:`common.run_folder.RunFolder`
  takes the columns of ``metrics.csv`` (a value no declaration names is an error, never
  silently dropped);
- the trackers (every epoch's row) and their ``final/*`` summary (the headline metrics);
- ``curves.png`` (each metric with a ``panel``);
- ``pipenv run runs show`` and ``runs diff`` (the headline metrics);
- the choices of ``checkpoint.monitor`` and of a sweep's ``metric`` (the monitorable ones).

Adding a metric is one declaration here plus the code that computes it (a hook adds
it to the epoch's row; docs/training.md shows how). This module imports neither torch
nor OmegaConf: the config and ``runs`` read it.
"""

from __future__ import annotations

from common.run_folder import MetricSpec

TIMED_PHASES = ("data_wait", "copy", "augment", "forward", "backward", "optimizer", "validation", "logging",
                "checkpoint")
"""The parts of a training step (and of the work between epochs) whose share of the time a run records."""

SYSTEM_FIGURES = {"system/cpu_cores_used": "CPU cores used", "system/cpu_wait_fraction": "CPU wait fraction",
                  "system/rss_gb": "resident memory (GB)", "system/gpu_utilization": "GPU utilisation (%)",
                  "system/gpu_peak_memory_gb": "GPU peak memory (GB)"}
"""The per-epoch system figures (the GPU ones empty on the CPU) and their labels."""

EPOCH_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("lr", "learning rate", "global", panel="lr", headline=True),
    MetricSpec("train/loss", "train loss", "mean", "min", monitor=True, panel="loss", headline=True),
    MetricSpec("train/accuracy", "train accuracy", "mean", "max", monitor=True, panel="accuracy", headline=True),
    MetricSpec("val/loss", "validation loss", "mean", "min", monitor=True, panel="loss", headline=True),
    MetricSpec("val/accuracy", "validation accuracy", "mean", "max", monitor=True, panel="accuracy", headline=True),
    MetricSpec("epoch_seconds", "epoch time (s)", "main", machine=True),
    MetricSpec("samples_per_second", "samples/s", "sum", machine=True),
    MetricSpec("val/macro_f1", "validation macro F1", "global", "max", monitor=True, panel="accuracy",
               headline=True),
    *(MetricSpec(f"time/{phase}_fraction", f"share of the time: {phase}", "main", machine=True)
      for phase in TIMED_PHASES),
    *(MetricSpec(name, label, "main", machine=True) for name, label in SYSTEM_FIGURES.items()),
)
"""The columns of a run's ``metrics.csv`` after ``epoch`` and ``step``, in order."""

MONITORED = tuple(spec.name for spec in EPOCH_METRICS if spec.monitor)
"""The metrics ``checkpoint.monitor`` (and a sweep's ``metric``) may name."""


def metric_spec(name: str) -> MetricSpec:
    """The declaration of ``name``.

    Raises:
        KeyError: When no metric of that name is declared.
    """
    for spec in EPOCH_METRICS:
        if spec.name == name:
            return spec
    raise KeyError(f"{name!r} is not a declared training metric (train/metrics.py)")

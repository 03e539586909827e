"""Where a run's time went, per epoch, and what bounds it: the ``time/*`` columns and the bottleneck in one sentence.

:class:`TimeBreakdownHook` closes each step of the run's phase timer
(:class:`train.loop.phase_timer.PhaseTimer`) once every other hook is done with it, and
adds each epoch's breakdown to its row as ``time/<phase>_fraction``.
:func:`bottleneck` turns a breakdown into one sentence saying what bounds the run and
what to do (``train --profile`` prints it); it is pure, so it is tested with given
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from train.loop.hooks import Hook, RunState, Step
from train.watch.system_figures import STARVED


class TimeBreakdownHook(Hook):
    """Ends each step of the phase timer (after the other hooks' work on it) and records each epoch's shares.

    Comes after the watching hooks, which time their work as a phase of the step, and before the profiler.
    """

    name = "time_breakdown"

    def after_step(self, run: RunState, step: Step) -> None:
        """Close the step (its optimiser step, logging and anything else the hooks did)."""
        run.timer.end_step()

    def after_validation(self, run: RunState) -> None:
        """The epoch's ``time/<phase>_fraction`` columns into its row."""
        run.add_metrics(run.timer.take().columns())


INPUT_ADVICE = {
    "decoded per batch": "pack the data set (pipenv run pack) or raise data.num_workers",
    "pack": "hold the pack in memory (data.in_memory=true) if it fits, or keep it on a faster disk",
    "memory": "the batches come from memory, so look for another process using the disk or the CPU",
}
"""What to do about waiting for data, by where the batches come from."""


@dataclass(frozen=True)
class BottleneckContext:
    """What naming the bottleneck needs to know besides the breakdown.

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


def bottleneck(shares: Mapping[str, float], context: BottleneckContext = BottleneckContext()) -> str:
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

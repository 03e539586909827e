"""A training run: :func:`train` starts one, :func:`resume` continues one, :func:`auto_resume` does either.

Each builds the parts of a run: the data (:mod:`train.data.loading`), the model being
trained (:class:`train.loop.trainer.Trainer`), the run's record
(:class:`train.watch.recorder.RunRecorder`) and its hooks (:func:`build_hooks`, where
their order is written down), then hands them to :class:`train.loop.run_loop.RunLoop`,
which runs the epochs. Around the loop it sets what belongs to the process rather
than to the run: the thread policy (:mod:`train.process.threads`) and the signal
handlers (:class:`train.resilience.preemption.StopSignals`), both given back at the
end. The model, optimiser, schedule step, RNG states and every hook's state are
restored on resume, so on the CPU a resumed run ends with the same weights, bit for
bit, as an uninterrupted one, whether it stopped at the end of an epoch or inside one
(a signal, a recovery checkpoint).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from common import slurm
from common.dicts import differences
from common.errors import UserError
from common.files import file_sha256
from common.paths import display_path
from common.run_folder import RunFolder, RunStatus, find_run
from networks.checkpoint import checkpoint_network_config, read_checkpoint
from networks.config import NetworkConfig
from train.config import DEFAULT_CONFIG, LoadedConfig, TrainConfig, load_train_config
from train.config_checks import check_changes, check_same_lists, pinned_network_config
from train.data.loading import load_training_data, steps_per_epoch
from train.loop.hooks import Hook, Hooks
from train.loop.phase_timer import PhaseTimer
from train.loop.run_loop import RunLoop
from train.loop.trainer import Trainer
from train.process.distributed import Processes, barrier, broadcast, start_processes, stop_processes
from train.process.threads import apply_threads, intra_op_threads
from train.resilience.auto_resume import decide
from train.resilience.checkpoints import CheckpointHook
from train.resilience.early_stopping import EarlyStoppingHook
from train.resilience.preemption import PreemptionHook, StopSignals
from train.resilience.rank_sync import RankSyncHook
from train.watch.console import ConsoleHook, RunStart
from train.watch.profiling import ProfilerHook
from train.watch.recorder import MetricsHook, RecordHook, RunRecorder, new_manifest
from train.watch.steps import StepLogHook, points_every
from train.watch.system_figures import SystemFiguresHook
from train.watch.time_breakdown import BottleneckContext, TimeBreakdownHook
from train.watch.trackers.base import RunInfo, Trackers, TrackersHook, preflight_trackers
from train.watch.validation import ValidationWatchHook

RESUME_KEYS = ("optimizer", "scheduler", "epoch", "step", "rng", "hooks", "history", "train_config")
"""Keys a checkpoint needs beyond the network to resume training from it."""


@dataclass(frozen=True)
class RunOptions:
    """Run-level options, given on the command line rather than in config files.

    Attributes:
        name: Run name prefix (default: the training config's file name, or the network's).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dev: Train and validate on ``data.dev_split`` (a quick check that code runs).
        progress: Show a progress bar.
        hooks: More hooks (:class:`train.loop.hooks.Hook`: a sweep's pruning, your own concern), after the run's
            own and before its checkpoints (each checkpoint holds their state): docs/training.md#hooks.
        auto_resume: Started by ``--auto-resume``: the same command continues the run
            (said when a signal stops it).
        profile: Profile this many steps after a warm-up, print the breakdown and
            stop (status ``profiled``); 0 trains normally (train/watch/profiling.py).
        threads: Intra-op CPU threads; 0 follows the thread policy (train/process/threads.py).
    """

    name: str | None = None
    device: str = "auto"
    dev: bool = False
    progress: bool = True
    hooks: tuple[Hook, ...] = ()
    auto_resume: bool = False
    profile: int = 0
    threads: int = 0


@dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes:
        run_dir: The run folder.
        status: How it ended.
        epochs_completed: Epochs finished (and checkpointed).
        best: ``{"epoch", "value", "metric"}`` of the best epoch, or None.
        metrics: The last epoch's metrics row.
        message: A sentence for the console.
        stop_signal: The signal that stopped the run, or None.
    """

    run_dir: Path
    status: RunStatus
    epochs_completed: int
    best: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    stop_signal: int | None = None

    @property
    def exit_status(self) -> int:
        """The command's exit status: 128 + the signal's number after a signal, 1 after divergence, a failure or
        a crash, else 0."""
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        return 0 if self.status.succeeded or self.status is RunStatus.RUNNING else 1


def train(loaded: LoadedConfig | TrainConfig, options: RunOptions = RunOptions()) -> RunResult:
    """Start a new training run.

    Args:
        loaded: The config (from :func:`train.config.load_train_config`, or a
            bare :class:`TrainConfig`).
        options: Run-level options.

    Returns:
        The run's result; the run folder holds everything it wrote.

    Raises:
        UserError: For a problem with the config, the data or the initial weights.
    """
    if isinstance(loaded, TrainConfig):
        loaded = LoadedConfig(config=loaded)
    config = loaded.config.for_dev() if options.dev else loaded.config
    preflight_trackers(config.to_dict()["log"])  # a tracker that cannot start stops before anything is written
    processes, device = start_processes(options.device)
    try:
        network_config = pinned_network_config(loaded, config)
        trainer = build_trainer(config, network_config, processes, device)
        init = initial_weights(trainer, config, network_config)
        name = options.name or _default_name(loaded, network_config, options.dev)
        folder = RunFolder(broadcast(RunFolder.create(name).path if processes.is_main else None, processes))
        try:
            with run_lock(folder, processes):
                recorder = RunRecorder(folder, processes.is_main)
                manifest = new_manifest(folder, trainer.data, network_config, str(device), processes.world_size,
                                        options.dev, init)
                return fit(trainer, recorder, options, lambda: recorder.start(config, network_config, manifest),
                           RunStart("run", init))
        except BaseException:
            if processes.is_main and not folder.manifest_path.exists():  # stopped before it began: no half-made run
                shutil.rmtree(folder.path, ignore_errors=True)
            raise
    finally:
        stop_processes()


def resume(run: str, overrides: Sequence[str] = (), allow_change: Sequence[str] = (),
           options: RunOptions = RunOptions(), config: TrainConfig | None = None) -> RunResult:
    """Continue a run from its ``checkpoints/last.pt`` (an epoch's end or inside an epoch), in the same run folder.

    Args:
        run: The run folder, its name under ``output/train``, or ``last``.
        overrides: ``key=value`` changes to the run's config.
        allow_change: Keys (or sections) that ``overrides`` may change, e.g.
            ``epochs``; any other difference is refused (except
            :data:`train.config.UNCOMPUTED_KEYS`). ``network`` never changes.
        options: Run-level options (``name`` and ``dev`` do not apply).
        config: The config to continue with, instead of the run's ``config.yaml`` with
            ``overrides`` (``--auto-resume``); checked against the run's the same way.

    Returns:
        The run's result.

    Raises:
        UserError: When the run or its checkpoint is unusable, the config changed
            without ``allow_change``, or the run is already complete.
    """
    folder = find_run(run)
    processes, device = start_processes(options.device)
    try:
        with run_lock(folder, processes):  # before anything reads or cleans the run's files
            return _resume_locked(folder, run, overrides, allow_change, options, processes, device, config)
    finally:
        stop_processes()


def _resume_locked(folder: RunFolder, run: str, overrides: Sequence[str], allow_change: Sequence[str],
                   options: RunOptions, processes: Processes, device: torch.device,
                   config: TrainConfig | None) -> RunResult:
    original = load_train_config(folder.config_path)
    loaded = load_train_config(folder.config_path, overrides) if config is None else LoadedConfig(config)
    preflight_trackers(loaded.config.to_dict()["log"])
    manifest = folder.read_manifest()  # an unreadable one is refused before anything is loaded or written
    changes = differences(original.config.to_dict(), loaded.config.to_dict())
    check_changes(changes, allow_change, folder)
    checkpoint_path = folder.checkpoints_dir / "last.pt"
    checkpoint = read_checkpoint(checkpoint_path)
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise UserError(f"{display_path(checkpoint_path)}: cannot resume from it, missing {missing}")
    if checkpoint["epoch"] >= loaded.config.epochs:
        raise UserError(
            f"{display_path(folder.path)} already completed {checkpoint['epoch']} of {loaded.config.epochs} epochs; "
            f"to train longer: --resume {run} epochs=<more> --allow-change epochs"
        )
    network_config = checkpoint_network_config(checkpoint, display_path(checkpoint_path))
    trainer = build_trainer(loaded.config, network_config, processes, device)
    lists = check_same_lists(manifest.data.get("lists") or {}, {split.name: split.list_path for split in (
        trainer.data.train, trainer.data.val)}, allow_change, folder)
    trainer.restore(checkpoint, display_path(checkpoint_path))
    recorder = RunRecorder(folder, processes.is_main)
    resumed = {"epoch": checkpoint["epoch"], "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}}
    if lists:
        resumed["changes"]["lists"] = lists
    if checkpoint["position"]:
        resumed["step_in_epoch"] = checkpoint["position"]["step_in_epoch"]
    history = list(checkpoint["history"])
    return fit(trainer, recorder, options,
               lambda: recorder.resume(loaded.config, network_config, history, resumed, checkpoint["step"]),
               RunStart("resuming", None, resumed["changes"] or "none"), history, checkpoint["hooks"])


def auto_resume(loaded: LoadedConfig, options: RunOptions, allow_change: Sequence[str] = ()) -> RunResult:
    """Start the run ``options.name`` names, or continue its newest unfinished one (see the module docstring).

    Args:
        loaded: The config the command gives (before ``--dev``).
        options: Run-level options; ``name`` is required.
        allow_change: Config keys that may differ from the run's when continuing it.

    Returns:
        The run's result; for a run that had ended, its recorded result.

    Raises:
        UserError: When the name is missing, the newest run is unreadable, still
            training, or was trained with another config.
    """
    if not options.name:
        raise UserError("--auto-resume needs --name: the name of the run that the same command continues")
    config = loaded.config.for_dev() if options.dev else loaded.config
    processes, _ = start_processes(options.device)
    try:
        decision, error = None, None
        if processes.is_main:
            try:
                decision = decide(options.name, config, allow_change)
            except UserError as exc:
                error = str(exc)
        decision, error = broadcast((decision, error), processes)
        if error:
            raise UserError(error)
        if decision.note and processes.is_main:
            print(f"auto-resume: {decision.note}", flush=True)  # before the run's own log exists
        options = replace(options, auto_resume=True)
        if decision.action == "new":
            return train(loaded, options)
        if decision.action == "resume":
            return resume(decision.run, allow_change=allow_change, options=options, config=config)
        return _ended(RunFolder(decision.run), decision.status)
    finally:
        stop_processes()


def _ended(folder: RunFolder, status: RunStatus) -> RunResult:
    """The result recorded by a run that ended (the decision's note already said so)."""
    manifest = folder.read_manifest()
    result = manifest.result or {}
    message = f"{display_path(folder.path)} already ended ({status}); nothing to train"
    return RunResult(folder.path, status, int(result.get("epochs_completed") or 0), folder.best(manifest),
                     dict(result.get("last") or {}), message)


def build_trainer(config: TrainConfig, network_config: NetworkConfig, processes: Processes,
                  device: torch.device) -> Trainer:
    """The data and the model being trained, with the run's phase timer (on a GPU it synchronises one step in
    every step point's interval: :func:`train.watch.steps.points_every`).

    Raises:
        UserError: For a problem with the data set or its lists.
    """
    data = load_training_data(config, network_config, processes)
    every = points_every(config, steps_per_epoch(len(data.train), config.batch_size, processes.world_size))
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    return Trainer(config, network_config, data, processes, device, PhaseTimer(True, synchronize, every))


def fit(trainer: Trainer, recorder: RunRecorder, options: RunOptions, record_start: Callable[[], None],
        start: RunStart, history: list[dict[str, Any]] | None = None,
        hook_states: dict[str, Any] | None = None) -> RunResult:
    """Run the loop with the run's hooks, under the thread policy and the run's signal handlers.

    Args:
        trainer: The model being trained (restored when resuming).
        recorder: The run's recorder.
        options: Run-level options.
        record_start: Writes the record of the run's start (the record hook calls it).
        start: What the first lines of the log say.
        history: The metrics rows of the epochs done before (resuming).
        hook_states: The hooks' states from the checkpoint (resuming).
    """
    processes = trainer.processes
    threads_before = intra_op_threads()  # given back when the run ends (a caller's process)
    try:
        threads = apply_threads(options.threads, trainer.device.type, decode_workers(trainer))
        signals = StopSignals(trainer.config.checkpoint.signals, announce=processes.is_main)
        hooks = build_hooks(trainer, recorder, options, record_start, replace(start, threads=threads), signals)
        loop = RunLoop(trainer, hooks, options.progress, history, hook_states)
        with signals:
            outcome = loop.fit()
            barrier(processes)  # nobody leaves (and no launcher stops the others) before the run's files are written
        return RunResult(recorder.folder.path, outcome.status, trainer.epoch, outcome.result.get("best"),
                         outcome.history[-1] if outcome.history else {}, outcome.message, outcome.signal)
    finally:
        trainer.data.close()
        recorder.close()
        intra_op_threads(threads_before)


def build_hooks(trainer: Trainer, recorder: RunRecorder, options: RunOptions, record_start: Callable[[], None],
                start: RunStart, signals: StopSignals) -> Hooks:
    """The run's hooks, in the order their events go (``after_run`` in reverse).

    The order's rules:

    1. ``trackers`` first: they open before anything of the run is written (one that cannot start stops it
       there) and, torn down last, close after the run's status is written, with its files.
    2. ``record`` next: it writes the config and the manifest; torn down after the hooks below, it writes the
       status with what they added to the result.
    3. ``rank_sync``: whether the processes ended with the same weights, into the result.
    4. ``preemption`` before ``checkpoints``: torn down after them, it says how to continue once the
       checkpoint hook wrote ``last.pt`` where the run stopped.
    5. The step-level watching: ``step_log``, ``system_figures``.
    6. ``time_breakdown`` after the hooks that time their work as a phase of the step: it closes the step
       (what the hooks after it do between steps is timed as between steps).
    7. ``profiler`` after ``time_breakdown``: a step counts once its phases are closed.
    8. ``early_stopping``, then the caller's hooks (:attr:`RunOptions.hooks`).
    9. ``checkpoints`` after every hook with a state: each checkpoint holds every hook's state after its epoch.
    10. ``metrics`` after ``checkpoints``: a row of ``metrics.csv`` is an epoch a resume can continue from.
    11. ``validation_watch`` after ``metrics``: ``curves.png`` shows the epoch's row.
    12. ``console`` last: an epoch's line knows whether it is the best.
    """
    config, folder, log = trainer.config, recorder.folder, recorder.log
    is_main, network_config = trainer.processes.is_main, trainer.network_config
    metrics = recorder.metrics
    trackers = Trackers(config.log.trackers, log)
    recorder.trackers = trackers
    resumed_step = trainer.step if start.verb == "resuming" else None
    info = RunInfo(folder, config.to_dict(), {"name": network_config.name, "hash": network_config.hash},
                   resumed_step)
    class_names = list(trainer.data.dataset.class_names)
    every = points_every(config, trainer.steps_per_epoch)
    hooks: list[Hook] = [
        TrackersHook(trackers, info, metrics, folder, is_main),
        RecordHook(recorder, record_start),
        RankSyncHook(log),
        PreemptionHook(signals, folder, log, options.auto_resume, slurm.current_job() if is_main else None),
        StepLogHook(recorder, config, every, trainer.network, class_names),
        SystemFiguresHook(trainer.device, every, log, is_main),
        TimeBreakdownHook(),
    ]
    if options.profile:
        context = BottleneckContext(trainer.device.type, trainer.data.train.source, None, torch.get_num_threads())
        hooks.append(ProfilerHook(options.profile, folder, context, log, is_main))
    hooks += [EarlyStoppingHook(config), *options.hooks, CheckpointHook(folder, config, log), MetricsHook(recorder),
              ValidationWatchHook(recorder, config, class_names, trainer.device, metrics),
              ConsoleHook(log, folder, start, metrics)]
    return Hooks(hooks)


@contextmanager
def run_lock(folder: RunFolder, processes: Processes) -> Iterator[None]:
    """Hold the run folder's lock on the main process for the block; every process stops when it is taken.

    Raises:
        UserError: When another process trains in the run, naming it.
    """
    stack, error = ExitStack(), None
    if processes.is_main:
        try:
            stack.enter_context(folder.exclusive())
        except UserError as exc:
            error = str(exc)
    error = broadcast(error, processes)
    if error:
        raise UserError(error)
    with stack:
        yield


def decode_workers(trainer: Trainer) -> int:
    """Processes decoding training batches beside the training threads (``data.num_workers`` when batches
    are decoded per batch, else 0)."""
    split = trainer.data.train
    return trainer.config.data.num_workers if split.images is None and split.pack is None else 0


def initial_weights(trainer: Trainer, config: TrainConfig, network_config: NetworkConfig) -> dict[str, Any] | None:
    """Load ``init.weights`` (in ``init.mode``), else the network config's ``pretrained`` file
    (in ``pretrained`` mode); returns what the manifest records, or None for a random start.

    Raises:
        UserError: When the file is missing, damaged, or does not fit the network.
    """
    weights, mode, key = config.init.weights, config.init.mode, "init.weights"
    if not weights and network_config.pretrained:
        weights, mode, key = network_config.pretrained, "pretrained", f"network config {network_config.name!r}: pretrained"
    if not weights:
        return None
    path, report = trainer.load_initial_weights(weights, mode, key)
    return {"file": display_path(path), "sha256": file_sha256(path), "mode": mode, "report": report.to_dict(),
            "summary": report.summary()}


def _default_name(loaded: LoadedConfig, network_config: NetworkConfig, dev: bool) -> str:
    source = loaded.source
    generic = source is None or source == DEFAULT_CONFIG or source.name == "config.yaml"
    name = network_config.name if generic else source.stem
    return f"{name}-dev" if dev else name

"""``pipenv run sweep``: hyperparameter search with Optuna, one training run per trial.

::

    pipenv run sweep --config train/configs/default.yaml --space train/configs/space.yaml --trials 20

The space file names dotted config keys and their ranges::

    metric: val/loss            # optional; default: the config's checkpoint.monitor
    direction: minimize         # optional; default: the metric's declared direction (train/metrics.py)
    params:
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      optim.weight_decay: {type: float, low: 0.0, high: 0.1}
      batch_size: {type: int, low: 32, high: 128, step: 32}
      augment.rotation: {type: categorical, choices: [0, 5, 10]}

Each trial trains a normal run (``output/train/<study>-t<NNN>-<time>/``) with those
values as command-line overrides; its value is the best of the metric over its
epochs. Poor trials are pruned from their intermediate validation metric. The
study lives in an SQLite file under ``output/sweeps/`` unless ``--storage`` names any
database URL Optuna accepts: several machines running the same command with the
same ``--storage`` and ``--study`` work on one study together (:mod:`train.experiments.study`:
each process seeds its sampler differently, no parameters are trained twice, and a
trial interrupted by a signal or lost with its process is marked ``FAIL``).
"""

from __future__ import annotations

import errno
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.cli import check_plain_name
from common.errors import UserError
from common.files import write_csv, write_json
from common.paths import display_path, output_dir
from common.run_folder import RunStatus
from common.staging import staged
from networks.config_files import load_yaml_mapping
from train.config import DEFAULT_CONFIG, load_train_config
from train.experiments.study import failing_on_interrupt, open_storage, repeated_trial, sampler_seed
from train.loop.hooks import Hook, RunState
from train.metrics import MONITORED, metric_spec

log = logging.getLogger("train.experiments.sweep")

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
PARAM_TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes:
        key: Dotted config key, e.g. ``optim.lr``.
        type: ``float``, ``int`` or ``categorical``.
        low: Lower bound (float, int).
        high: Upper bound (float, int).
        log: Sample on a log scale (float, int).
        step: Grid step (float, int), or None.
        choices: Values (categorical; also what the grid sampler tries).
    """

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Space:
    """A search space.

    Attributes:
        params: The searched keys.
        metric: Metric to optimise (one of :data:`train.metrics.MONITORED`), or None for the config's monitor.
        direction: ``maximize`` or ``minimize``, or None for the metric's declared direction.
    """

    params: tuple[Param, ...]
    metric: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did.

    Attributes:
        study: The study name.
        storage: The study's database URL.
        folder: ``output/sweeps/<study>/`` with the summary and plots.
        best: ``{"number", "value", "params", "run_dir"}`` of the best trial, or None.
        counts: Trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``).
    """

    study: str
    storage: str
    folder: Path
    best: dict[str, Any] | None
    counts: dict[str, int]


def load_space(path: Path) -> Space:
    """Read and validate a search-space YAML (see the module docstring).

    Raises:
        UserError: Naming the file and key for anything malformed.
    """
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: search space file not found")
    raw = load_yaml_mapping(Path(path), "search-space keys (metric, direction, params)")
    unknown = sorted(set(raw) - {"metric", "direction", "params"})
    if unknown:
        raise UserError(f"{shown}: unknown key(s) {unknown}; expected metric, direction, params")
    metric, direction = raw.get("metric"), raw.get("direction")
    if metric is not None and metric not in MONITORED:
        raise UserError(f"{shown}: metric: {metric!r} is not one of {list(MONITORED)}")
    if direction is not None and direction not in ("maximize", "minimize"):
        raise UserError(f"{shown}: direction: {direction!r} is not 'maximize' or 'minimize'")
    entries = raw.get("params")
    if not isinstance(entries, dict) or not entries:
        raise UserError(f"{shown}: params: expected a mapping of dotted config keys to ranges")
    params = []
    for key, spec in entries.items():
        where = f"{shown}: params.{key}"
        if not isinstance(spec, dict) or spec.get("type") not in PARAM_TYPES:
            raise UserError(f"{where}: expected a mapping with type one of {list(PARAM_TYPES)}")
        extra = sorted(set(spec) - {"type", "low", "high", "log", "step", "choices"})
        if extra:
            raise UserError(f"{where}: unknown key(s) {extra}")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise UserError(f"{where}: choices: a non-empty list is required")
            params.append(Param(key, "categorical", choices=tuple(choices)))
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: low and high must be numbers") from None
        if not low < high or (spec.get("log") and low <= 0):
            raise UserError(f"{where}: need low < high (and low > 0 with log: true), got {low} and {high}")
        step = spec.get("step")
        params.append(Param(key, spec["type"], low, high, bool(spec.get("log", False)),
                            float(step) if step is not None else None, tuple(spec.get("choices") or ())))
    space = Space(tuple(params), metric, direction)
    load_train_config(None, [f"{p.key}={_example(p)}" for p in params])  # every key must exist in the config
    _check_values(space, shown)
    return space


def _check_values(space: Space, shown: str) -> None:
    """Every value a trial may take must pass the training config's checks: each end of a range, each choice.

    Raises:
        UserError: Naming the space file, the key and the value, with the config's objection.
    """
    for p in space.params:
        ends = list(p.choices) if p.type == "categorical" else [p.low, p.high]
        for value in ends:
            value = int(value) if p.type == "int" else value
            try:
                load_train_config(None, [f"{p.key}={value}"])
            except UserError as exc:
                why = str(exc).split(": ", 1)[-1]
                raise UserError(f"{shown}: params.{p.key}: a trial could take {value!r}, which the training config "
                                f"refuses ({why})") from None


def run_sweep(config: Path | None, space_path: Path, trials: int, sampler: str = "tpe", pruner: Any = "median",
              storage: str | None = None, study: str | None = None, seed: int = 0, dev: bool = False,
              device: str = "auto", overrides: Sequence[str] = ()) -> SweepResult:
    """Run ``trials`` trials of a study (new, or continued when it exists).

    Args:
        config: The base training config (default ``train/configs/default.yaml``).
        space_path: The search-space YAML.
        trials: Trials to run in this call.
        sampler: ``tpe``, ``random`` or ``grid`` (grid needs ``choices`` for every key).
        pruner: ``median``, ``none``, or an ``optuna.pruners.BasePruner``.
        storage: An Optuna storage URL (default: SQLite under ``output/sweeps/``).
        study: Study name (default ``<config name>-sweep``).
        seed: Sampler seed.
        dev: Train every trial on the dev split.
        device: Training device.
        overrides: Extra ``key=value`` overrides applied to every trial.
    """
    import optuna

    config = config or DEFAULT_CONFIG
    base = load_train_config(config, overrides).config
    space = load_space(space_path)
    metric = space.metric or base.checkpoint.monitor
    direction = space.direction or ("maximize" if metric_spec(metric).direction == "max" else "minimize")
    study_name = study or f"{Path(config).stem}-sweep"
    check_plain_name(study_name, "--study")
    folder = output_dir() / "sweeps" / study_name
    storage_object, shown = open_storage(storage, output_dir() / "sweeps" / f"{study_name}.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study_object = optuna.create_study(study_name=study_name, storage=storage_object, load_if_exists=True,
                                           direction=direction, pruner=_pruner(pruner))
    except ValueError as exc:  # e.g. an existing study of the other direction
        raise UserError(f"--study {study_name} in {shown}: {exc}") from None
    seed_used = sampler_seed(seed, len(study_object.get_trials(deepcopy=False)))
    study_object.sampler = _sampler(sampler, space, seed_used)
    log.info("study %s: sampler %s seeded %d (from --seed %d)", study_name, sampler, seed_used, seed)
    mine: list[int] = []
    objective = _objective(config, space, metric, direction, study_name, dev, device, overrides, (seed_used, mine))
    with failing_on_interrupt(study_object, mine):
        study_object.optimize(objective, n_trials=trials, catch=())
    return _summarise(study_object, folder, shown, metric, direction)


def _objective(config: Path, space: Space, metric: str, direction: str, study_name: str, dev: bool, device: str,
               overrides: Sequence[str], process: tuple[int, list[int]]) -> Any:
    """The Optuna objective: one training run per trial, reporting ``metric`` every epoch for pruning.

    ``process`` is this process's sampler seed (recorded on each trial) and the list of
    the trials it started (for :func:`train.experiments.study.failing_on_interrupt`).
    """
    import optuna

    from train.run import RunOptions, train

    seed_used, mine = process

    def objective(trial: optuna.Trial) -> float:
        mine.append(trial.number)
        trial.set_user_attr("sampler_seed", seed_used)
        values = {p.key: _suggest(trial, p) for p in space.params}
        repeated = repeated_trial(trial)
        if repeated is not None:
            trial.set_user_attr("repeats_trial", repeated)
            log.info("trial %d: the parameters of trial %d again %s; pruned, not trained twice", trial.number,
                     repeated, values)
            raise optuna.TrialPruned(f"repeats trial {repeated}")
        loaded = load_train_config(config, [*overrides, *(f"{k}={v}" for k, v in values.items())])
        pruning = PruningHook(trial, metric)
        result = train(loaded, RunOptions(name=f"{study_name}-t{trial.number:03d}", device=device, dev=dev,
                                          progress=False, hooks=(pruning,)))
        trial.set_user_attr("run_dir", str(result.run_dir))
        log.info("trial %d: %s %s", trial.number, result.status, values)
        if result.stop_signal is not None:
            raise KeyboardInterrupt  # a signal stops the sweep too; the trial's run is left resumable
        if result.status is RunStatus.PRUNED:
            raise optuna.TrialPruned()
        finite = [v for v in pruning.history if math.isfinite(v)]
        if result.status is RunStatus.DIVERGED or not finite:
            return float("nan")  # Optuna records the trial as failed
        return max(finite) if direction == "maximize" else min(finite)

    return objective


class PruningHook(Hook):
    """A trial's hook: reports the metric to Optuna after every epoch and stops the run (``pruned``) when the
    pruner says so (the main process decides; the epoch's exchange tells the others).

    Args:
        trial: The Optuna trial.
        metric: The optimised metric.

    Attributes:
        history: The metric after each epoch.
    """

    name = "pruning"

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric = trial, metric
        self.history: list[float] = []

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """Report the epoch's value; ask to stop when the trial should be pruned."""
        if not run.trainer.processes.is_main:
            return
        value, epoch = float(row[self.metric]), int(row["epoch"])
        self.history.append(value)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            run.request_stop(RunStatus.PRUNED, f"stopped after epoch {epoch}: pruned")


def _summarise(study: Any, folder: Path, storage: str, metric: str, direction: str) -> SweepResult:
    import optuna

    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = None
    if completed:
        trial = study.best_trial
        best = {"number": trial.number, "value": trial.value, "params": trial.params,
                "run_dir": trial.user_attrs.get("run_dir")}
    keys = sorted({k for t in trials for k in t.params})
    for attempt in range(3):  # several processes sharing a study may publish their summaries at the same moment
        try:
            with staged(folder, exists="replace") as stage:  # the summary of the whole study so far, rewritten
                write_csv(stage.path / "trials.csv", ["number", "state", "value", *keys, "run_dir", "sampler_seed"],
                          ([t.number, t.state.name, t.value, *(t.params.get(k) for k in keys),
                            t.user_attrs.get("run_dir", ""), t.user_attrs.get("sampler_seed", "")] for t in trials))
                plots = _plots(study, stage.path, len(completed))
                write_json(stage.path / "summary.json", {"study": study.study_name, "storage": storage,
                                                         "metric": metric, "direction": direction, "counts": counts,
                                                         "best": best, "plots": plots})
            break
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT) or attempt == 2:
                raise
    return SweepResult(study.study_name, storage, folder, best, counts)


def _plots(study: Any, folder: Path, completed: int) -> dict[str, str]:
    """Optimisation history and parameter importances (when enough trials completed)."""
    from optuna.visualization import matplotlib as optuna_plots

    from common.plotting import drawing, pyplot, save_figure

    plt = pyplot()  # Optuna draws through pyplot, and sets its own style: inside drawing(), undone after
    written = {}
    with drawing(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, draw, needs in (("history.png", optuna_plots.plot_optimization_history, 1),
                                  ("importance.png", optuna_plots.plot_param_importances, 2)):
            if completed < needs:
                written[name] = f"skipped: needs {needs} completed trial(s)"
                continue
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:
                written[name] = f"skipped: {exc}"
                continue
            axes.figure.set_size_inches(8, 5)
            axes.figure.set_dpi(110)
            save_figure(axes.figure, folder / name)
            plt.close(axes.figure)
            written[name] = name
    return written


def _sampler(name: str, space: Space, seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {}
        for p in space.params:
            if p.choices:
                grid[p.key] = list(p.choices)
            elif p.step is not None:
                count = int(round((p.high - p.low) / p.step)) + 1
                grid[p.key] = [p.low + i * p.step for i in range(count)]
                if p.type == "int":
                    grid[p.key] = [int(v) for v in grid[p.key]]
            else:
                raise UserError(f"--sampler grid: params.{p.key} needs choices or a step")
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise UserError(f"--sampler {name!r}: use one of {list(SAMPLERS)}")


def _pruner(pruner: Any) -> Any:
    import optuna

    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise UserError(f"--pruner {pruner!r}: use one of {list(PRUNERS)}")


def _suggest(trial: Any, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(p.key, list(p.choices))
    if p.type == "int":
        return trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)


def _example(p: Param) -> Any:
    if p.type == "categorical":
        return p.choices[0]
    return int(p.low) if p.type == "int" else p.low

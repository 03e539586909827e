"""``train ... --name X --auto-resume``: one command that starts a run the first time and continues it after.

A requeued job, or a group of workers restarted by ``torchrun --max-restarts``, runs
the same command again. The newest run named ``X`` (folders ``X-<YYYYmmdd-HHMMSS>``)
decides what that command does:

- none, or one that stopped before writing any checkpoint: a new run starts;
- one that stopped before its end (``interrupted``, ``preempted``, ``crashed``,
  ``failed``, or ``running`` with nobody holding its lock): it continues from its
  ``last.pt``, when the config is the run's own (a change is refused as ``--resume``
  refuses it, unless ``--allow-change`` names it);
- one that is still training (its lock is held): refused, naming the holder;
- one that ended (``finished``, ``stopped_early``, ``pruned``, ``diverged``): nothing
  is trained again; the command says so and exits as that run did.

Under torchrun, rank 0 decides and every process follows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from common.dicts import differences
from common.errors import UserError
from common.locks import holder
from common.paths import display_path
from common.run_folder import RunFolder, list_runs
from train.config import LoadedConfig, TrainConfig, load_train_config
from train.process.distributed import broadcast, start_processes, stop_processes
from train.run import RunOptions, RunResult, check_changes, pinned_network_config, resume, train

ENDED = ("finished", "stopped_early", "pruned", "diverged")
"""Statuses of a run that ended by design: ``--auto-resume`` never trains it again."""


@dataclass(frozen=True)
class Decision:
    """What ``--auto-resume`` does: ``new``, ``resume`` (``run``) or ``ended`` (``run``, its ``status``).

    Attributes:
        action: ``new``, ``resume`` or ``ended``.
        run: The run folder's path, for ``resume`` and ``ended``.
        status: The run's status.
        note: Why, for the console.
    """

    action: str
    run: str | None = None
    status: str | None = None
    note: str = ""


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


def decide(name: str, config: TrainConfig, allow_change: Sequence[str]) -> Decision:
    """Rank 0's decision for the runs named ``name``.

    Raises:
        UserError: As :func:`auto_resume`.
    """
    pattern = re.compile(rf"^{re.escape(name)}-\d{{8}}-\d{{6}}(-\d+)?$")
    runs = [run for run in list_runs() if pattern.match(run.name)]
    if not runs:
        return Decision("new", note=f"no run named {name!r} yet: starting one")
    run = runs[-1]
    status = run.status(run.read_manifest())
    shown = display_path(run.path)
    if status.startswith("running"):
        who = holder(run.lock_path) or {}
        raise UserError(f"{shown} is in use by pid {who.get('pid', '?')} on host {who.get('host', '?')} (since "
                        f"{who.get('since', '?')}); --auto-resume does not start a second run beside it")
    if status in ENDED:
        return Decision("ended", str(run.path), status,
                        f"{shown} already ended ({status}); nothing to train (another --name starts a new run)")
    if not (run.checkpoints_dir / "last.pt").is_file():
        return Decision("new", note=f"{shown} ({status}) stopped before its first checkpoint: starting a new run")
    original = load_train_config(run.config_path)
    check_changes(differences(original.config.to_dict(), config.to_dict()), allow_change, run)
    pinned_network_config(original, config)  # refuses a shared network config that changed since the run began
    return Decision("resume", str(run.path), status, f"continuing {shown} ({status})")


def _ended(folder: RunFolder, status: str) -> RunResult:
    """The result recorded by a run that ended (the decision's note already said so)."""
    manifest = folder.read_manifest()
    result = manifest.result or {}
    message = f"{display_path(folder.path)} already ended ({status}); nothing to train"
    return RunResult(folder.path, status, int(result.get("epochs_completed") or 0), folder.best(manifest),
                     dict(result.get("last") or {}), message)

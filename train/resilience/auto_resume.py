"""``train ... --name X --auto-resume``: one command that starts a run the first time and continues it after.

A requeued job, or a group of workers restarted by ``torchrun --max-restarts``, runs
the same command again. The newest run named ``X`` (folders ``X-<YYYYmmdd-HHMMSS>``)
decides what that command does:

- none, or one that stopped before writing any checkpoint: a new run starts;
- one that stopped before its end (a resumable :class:`common.run_folder.RunStatus`:
  ``interrupted``, ``preempted``, ``crashed``, ``failed``, or ``running`` with nobody
  holding its lock): it continues from its
  ``last.pt``, when the config is the run's own (a change is refused as ``--resume``
  refuses it, unless ``--allow-change`` names it);
- one that is still training (its lock is held): refused, naming the holder;
- one that ended (``finished``, ``stopped_early``, ``pruned``, ``profiled``,
  ``diverged``): nothing is trained again; the command says so and exits as that run did.

Under torchrun, rank 0 decides (:func:`decide`) and every process follows
(:func:`train.run.auto_resume`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from common.dicts import differences
from common.errors import UserError
from common.locks import holder
from common.paths import display_path
from common.run_folder import RunStatus, list_runs
from train.config import TrainConfig, load_train_config
from train.config_checks import check_changes, pinned_network_config


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
    status: RunStatus | None = None
    note: str = ""


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
    if status is RunStatus.RUNNING:
        who = holder(run.lock_path) or {}
        raise UserError(f"{shown} is in use by pid {who.get('pid', '?')} on host {who.get('host', '?')} (since "
                        f"{who.get('since', '?')}); --auto-resume does not start a second run beside it")
    if status.ended:
        return Decision("ended", str(run.path), status,
                        f"{shown} already ended ({status}); nothing to train (another --name starts a new run)")
    if not (run.checkpoints_dir / "last.pt").is_file():
        return Decision("new", note=f"{shown} ({status}) stopped before its first checkpoint: starting a new run")
    original = load_train_config(run.config_path)
    check_changes(differences(original.config.to_dict(), config.to_dict()), allow_change, run)
    pinned_network_config(original, config)  # refuses a shared network config that changed since the run began
    return Decision("resume", str(run.path), status, f"continuing {shown} ({status})")

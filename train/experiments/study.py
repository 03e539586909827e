"""An Optuna study that several processes (and machines) can share safely.

:func:`train.experiments.sweep.run_sweep` opens its study through this module:

- **Storage** (:func:`open_storage`): the ``--storage`` URL is checked (a URL that is
  not a database URL, a driver that is not installed, a server that cannot be
  reached: one line, the password hidden). A bare ``postgresql://`` URL uses
  psycopg2 (the driver this project locks) when psycopg 3 is absent. Every process
  beats a heartbeat into the study, so a trial whose process died without a word
  (SIGKILL, a lost machine) is marked ``FAIL`` by the next process that runs a trial.
- **Seeds** (:func:`sampler_seed`): each process seeds its sampler from ``--seed``,
  the number of trials already in the study, its host, its pid and the time, so a
  continued study and a second process never replay the first one's parameters; the
  seed is recorded on every trial (user attribute ``sampler_seed``).
- **Repeats** (:func:`repeated_trial`): a trial whose parameters an earlier trial
  already has (finished, pruned or still running elsewhere) is not trained again:
  it is pruned, naming that trial (user attribute ``repeats_trial``).
- **Signals** (:func:`failing_on_interrupt`): SIGTERM stops a sweep as Ctrl-C does;
  either way the trial this process was running is marked ``FAIL`` (never left
  ``RUNNING``), and no traceback is printed.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.provenance import host_name

log = logging.getLogger("train.experiments.sweep")

HEARTBEAT_SECONDS = 60
"""How often a running trial's process writes its heartbeat into the study."""

GRACE_SECONDS = 300
"""A running trial without a heartbeat for this long is marked ``FAIL`` by the next process that runs a trial."""


def open_storage(url: str | None, default: Path) -> tuple[Any, str]:
    """The study's storage, with a heartbeat, and its URL as shown to the user (password hidden).

    Args:
        url: ``--storage``: any database URL SQLAlchemy accepts; None for an SQLite file.
        default: The SQLite file used without ``url``.

    Raises:
        UserError: Naming ``--storage`` and what is wrong, for a URL that is not a database URL,
            a driver that is not installed, or a database that cannot be opened.
    """

    if url is None:
        default.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{default.resolve()}"
    url = with_installed_driver(url)
    shown = hide_password(url)
    try:
        return _storage_created(url), shown
    except ImportError as exc:
        cause = exc.__cause__ or exc
        raise UserError(f"--storage {shown}: the database driver is not installed ({cause}); this project installs "
                        "psycopg2 for postgresql:// and the standard library's sqlite3 for sqlite:///") from None
    except Exception as exc:  # SQLAlchemy's errors share a base class only once SQLAlchemy is imported
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--storage {shown}: cannot open the study's database ({first}); give a database URL such "
                        "as sqlite:///path/to/sweeps.db or postgresql://user:password@host/db") from None


def _storage_created(url: str, attempts: int = 5) -> Any:
    """``RDBStorage(url)`` with a heartbeat, tried again when another process was creating the same tables.

    Processes started together on a new database race to create Optuna's tables;
    PostgreSQL then refuses one ``CREATE TABLE`` with a unique-key or duplicate-table
    error. Once the tables exist, opening them again succeeds.
    """
    import optuna

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=GRACE_SECONDS)
        except Exception as exc:  # SQLAlchemy's IntegrityError or ProgrammingError, by name (no import here)
            if type(exc).__name__ not in ("IntegrityError", "ProgrammingError") or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
    raise AssertionError("unreachable")


def with_installed_driver(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) as ``postgresql+psycopg2://`` when psycopg 3 is not installed.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3 and no longer knows
    ``postgres://``; this project locks psycopg2.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("postgresql", "postgres"):
        return url
    try:
        import psycopg  # noqa: F401 - only whether it is there
    except ImportError:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"  # SQLAlchemy no longer reads the postgres:// spelling


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    scheme, separator, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{place}"


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The seed of this process's sampler: ``seed`` mixed with the study's trial count, this host, pid and time.

    Two processes, or one study continued, never draw the same sequence; the seed is
    recorded on each trial, so a trial's draw can be traced.
    """
    import numpy as np

    entropy = [seed, trials_so_far, zlib.crc32(host_name().encode()), os.getpid(), time.time_ns() & 0xFFFFFFFF]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def repeated_trial(trial: Any) -> int | None:
    """The number of an earlier trial with exactly ``trial``'s parameters (finished, pruned or running), or None."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number != trial.number and other.params == trial.params and "repeats_trial" not in other.user_attrs:
            return other.number
    return None


@contextmanager
def failing_on_interrupt(study: Any, mine: list[int]) -> Iterator[None]:
    """Run a sweep so that SIGTERM and Ctrl-C fail this process's running trial instead of abandoning it.

    SIGTERM is turned into ``KeyboardInterrupt`` (in the main thread) for the block.
    Optuna marks the trial whose objective was interrupted ``FAIL``; any trial of
    ``mine`` still ``RUNNING`` when the block ends by an exception (an interrupt in
    Optuna's own code) is marked ``FAIL`` here. Optuna's log of a failed trial (which
    carries a traceback) is silenced: the command says what failed in one line.

    Args:
        study: The Optuna study.
        mine: Numbers of the trials this process started (the objective appends them).
    """

    optuna_log = logging.getLogger("optuna")
    level = optuna_log.level
    optuna_log.setLevel(logging.ERROR)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    except BaseException as exc:
        _fail_running(study, mine)
        if mine and isinstance(exc, KeyboardInterrupt):
            log.warning("sweep stopped (%s): trial %d marked FAIL in the study", str(exc) or "Ctrl-C", mine[-1])
        raise
    finally:
        optuna_log.setLevel(level)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _fail_running(study: Any, mine: list[int]) -> None:
    """Mark the trials of ``mine`` that are still ``RUNNING`` as ``FAIL`` (as far as the storage can be reached)."""
    import optuna

    try:
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.number in mine:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    except Exception as exc:  # the database may be what failed; the heartbeat fails the trial later then
        log.warning("could not mark this process's running trial FAIL (%s); the study's heartbeat will", exc)

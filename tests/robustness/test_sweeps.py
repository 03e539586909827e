"""Sweeps shared by several processes, and stopped by signals: real processes, a real database.

The README's recipe for several machines, tested for real: two sweep processes run at
once against a PostgreSQL server this test starts (Debian's ``postgresql`` package;
``.ci/run`` installs it), and every trial is recorded once, with parameters no other
trial has. Then SIGTERM and Ctrl-C during a trial: the trial ends ``FAIL`` (never
``RUNNING`` for ever) and no traceback is printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from common.paths import PROJECT_ROOT
from tests.commands import command_line
from train.experiments.study import hide_password, with_installed_driver

SPACE = "params:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n"


def sweep_line(space: Path, study: str, trials: int, network: Path, digits: Path, *extra: str) -> list[str]:
    return [*command_line("sweep"), "--space", str(space), "--study", study, "--trials", str(trials), "--sampler",
            "random", "--pruner", "none", "--dev", "--device", "cpu", f"network={network}", f"data.dataset={digits}",
            "batch_size=32", *extra]


@pytest.fixture
def sweep_setup(tmp_path: Path, trained_run) -> dict[str, Path]:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return {"space": space, "network": trained_run.network_config, "digits": trained_run.digits_root}


@pytest.mark.slow
def test_two_processes_share_a_postgresql_study_and_never_repeat_a_trial(postgres, sweep_setup):
    """The README's recipe: the same sweep command on two machines (here two processes), one database."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    line = sweep_line(sweep_setup["space"], "shared", 3, sweep_setup["network"], sweep_setup["digits"], "epochs=1",
                      "--storage", postgres)
    processes = [subprocess.Popen(line, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0 and "Traceback" not in err, err
    trials = optuna.load_study(study_name="shared", storage=with_installed_driver(postgres)).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # every trial recorded once
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.params["optim.lr"] for t in trials}) == 6  # no parameters repeated
    assert len({t.user_attrs["sampler_seed"] for t in trials}) == 2  # one seed per process, recorded
    runs = {t.user_attrs["run_dir"] for t in trials}
    assert len(runs) == 6 and all(Path(run, "manifest.json").is_file() for run in runs)


@pytest.mark.slow
def test_a_continued_study_draws_new_parameters(sweep_setup):
    """Continuing a sweep (the same command again) used to replay the same seed, so the same parameters."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    line = sweep_line(sweep_setup["space"], "again", 2, sweep_setup["network"], sweep_setup["digits"], "epochs=1")
    for _ in range(2):
        done = subprocess.run(line, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    storage = f"sqlite:///{Path(os.environ['IMAGEPIPE_OUTPUT']) / 'sweeps' / 'again.db'}"
    trials = optuna.load_study(study_name="again", storage=storage).get_trials()
    assert len(trials) == 4 and len({t.params["optim.lr"] for t in trials}) == 4


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_sweep_fails_the_trial_and_prints_no_traceback(sweep_setup, stop):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    line = sweep_line(sweep_setup["space"], "stopped", 3, sweep_setup["network"], sweep_setup["digits"], "epochs=200")
    process = subprocess.Popen(line, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    runs = Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train"
    deadline = time.monotonic() + 300
    while not list(runs.glob("stopped-t000-*/metrics.csv")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the first trial is training (an epoch ended)
    process.send_signal(stop)
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted", err
    storage = f"sqlite:///{Path(os.environ['IMAGEPIPE_OUTPUT']) / 'sweeps' / 'stopped.db'}"
    (trial,) = optuna.load_study(study_name="stopped", storage=storage).get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL  # never RUNNING for ever


def test_a_bare_postgresql_url_uses_the_driver_this_project_installs():
    try:
        import psycopg  # noqa: F401
        scheme = "postgresql"
    except ImportError:
        scheme = "postgresql+psycopg2"  # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3
    assert with_installed_driver("postgresql://u:p@host/db") == f"{scheme}://u:p@host/db"
    assert with_installed_driver("postgres://u:p@host/db") == f"{scheme}://u:p@host/db"
    assert with_installed_driver("sqlite:///x.db") == "sqlite:///x.db"
    assert hide_password("postgresql://me:secret@host:5432/db") == "postgresql://me:***@host:5432/db"

"""common.slurm without a cluster: the ``--slurm`` options, durations, what a job knows, the script files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common import slurm
from common.errors import UserError


def test_options_split_into_sbatch_and_the_projects_own():
    options = slurm.parse_options(["time=24:00:00", "--partition=gpu", "grace=90", "processes-per-node=4",
                                   "nodes=2", "max-restarts=0"])
    assert options.sbatch == {"time": "24:00:00", "partition": "gpu", "nodes": "2"}
    assert (options.grace, options.processes_per_node, options.max_restarts, options.nodes) == (90, 4, 0, 2)
    assert slurm.parse_options([]) == slurm.SlurmOptions()


@pytest.mark.parametrize("item, said", [
    ("time", "expected key=value"),
    ("output=/tmp/x", "sets --output itself"),
    ("array=0-3", "sets --array itself"),
    ("signal=B:USR1@60", "sets --signal itself"),
    ("grace=soon", "a whole number"),
    ("processes-per-node=0", "a whole number"),
    ("nodes=two", "a whole number"),
    ("time=1:00\n#SBATCH --wrap=rm", "expected key=value"),
    ("time=1:00\n", "expected key=value"),
    ("comment=a b", "expected key=value"),
    ("Time=1", "expected key=value"),
])
def test_bad_options_are_refused_naming_the_option(item, said):
    with pytest.raises(UserError, match=said):
        slurm.parse_options([item])


@pytest.mark.parametrize("text, seconds", [("UNLIMITED", None), ("30", 1800), ("05:10", 310), ("1:00:00", 3600),
                                           ("2-03:00:01", 2 * 86400 + 3 * 3600 + 1), ("INVALID", None), ("", None)])
def test_durations(text, seconds):
    assert slurm.parse_duration(text) == seconds


def test_without_drops_the_submission_options_in_both_spellings():
    argv = ["epochs=2", "--submit", "slurm", "--slurm", "time=1", "--slurm=nodes=2", "--name", "x", "--dry-run",
            "--seed=3"]
    assert slurm.without(argv, ("--submit", "--slurm", "--seed"), ("--dry-run",)) == ["epochs=2", "--name", "x"]


def fake_scontrol(folder: Path, fields: str, status: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\nif [ "$1" = requeue ]; then echo "$@" >> {folder}/calls; exit {status}; fi\n'
                      f'echo "{fields}"\n')
    script.chmod(0o755)


def test_a_job_reads_its_own_fields_and_the_reason_it_stopped(tmp_path, monkeypatch):
    fake_scontrol(tmp_path, "JobId=77 JobName=x Requeue=1 Restarts=2 BatchFlag=1 RunTime=00:58:30 "
                            "TimeLimit=01:00:00 StdOut=/out/train-x-77.out")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    job = slurm.current_job({"SLURM_JOB_ID": "77"})
    assert job == slurm.SlurmJob("77", 2, True, True, 90.0, "/out/train-x-77.out")
    assert slurm.stop_reason(job, 120) == "time limit"
    assert slurm.stop_reason(job, 20) == "preemption"  # 90 s left is more than 20 s of grace and a minute
    assert slurm.current_job({}) is None  # not under Slurm
    assert slurm.current_job({"SLURM_JOB_ID": "78"}) is None  # scontrol answered for another job
    assert slurm.requeue("77") is None and (tmp_path / "calls").read_text() == "requeue 77\n"


def test_a_refused_requeue_says_why(tmp_path, monkeypatch):
    fake_scontrol(tmp_path, "", status=1)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert slurm.requeue("77") == "exit status 1"


def test_without_sbatch_the_submission_names_the_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sbatch not found: submit from a machine of the Slurm cluster"):
        slurm.write_and_submit(tmp_path / "job.sh", "#!/bin/bash\n", tmp_path / "out", dry_run=False)
    assert (tmp_path / "job.sh").read_text() == "#!/bin/bash\n"


def test_scripts_never_replace_each_other(tmp_path):
    first = slurm.write_script(tmp_path / "train-x.sh", "one")
    second = slurm.write_script(tmp_path / "train-x.sh", "two")
    assert (first.name, second.name) == ("train-x.sh", "train-x-2.sh") and first.read_text() == "one"
    assert os.access(second, os.X_OK)

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
    flags = slurm.parse_options(["exclusive", "constraint=a100|h100", "stop-signal=SIGUSR1"])
    assert flags.sbatch == {"exclusive": "", "constraint": "a100|h100"} and flags.stop_signal == "USR1"
    assert "#SBATCH --exclusive\n" in slurm.sbatch_lines("x", flags, {}) + "\n"


@pytest.mark.parametrize("items, own, said", [
    (["grace=30"], ("max-restarts",), "this job does not take it"),
    (["processes-per-node=2"], (), "this job does not take it"),
    (["nodes=2"], ("max-restarts",), "runs one task on one node"),
    (["stop-signal=HUP"], tuple(slurm.OWN_KEYS), "one of"),
])
def test_keys_a_kind_of_job_does_not_take_are_refused(items, own, said):
    with pytest.raises(UserError, match=said):
        slurm.parse_options(items, own_keys=own, one_node=True)


@pytest.mark.parametrize("item, said", [
    ("=1", "expected key=value"),
    ("outp=/tmp/x", "sets that itself"),
    ("ntasks=4", "sets that itself"),
    ("output=/tmp/x", "sets that itself"),
    ("array=0-3", "sets that itself"),
    ("signal=B:USR1@60", "sets that itself"),
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
    fake_scontrol(tmp_path, "JobId=77 JobName=x JobState=RUNNING Requeue=1 Restarts=2 BatchFlag=1 RunTime=00:58:30 "
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


@pytest.mark.parametrize("name", ["a b", "x$(id)", "-x", "", "ü", "a" * 101, "a\nb"])
def test_a_job_name_that_cannot_stand_in_a_script_is_refused(name):
    with pytest.raises(UserError, match="a submitted job's name is 1 to 100 letters"):
        slurm.check_job_name(name, "--name")
    slurm.check_job_name("flowers-r18.v2_b", "--name")


def test_an_output_folder_an_sbatch_line_cannot_hold_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "my output"))
    with pytest.raises(UserError, match="an #SBATCH line cannot name this folder"):
        slurm.checked_slurm_dir()
    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "plain"))
    assert slurm.checked_slurm_dir() == (tmp_path / "plain" / "slurm").resolve()


def test_abbreviated_options_are_written_in_full_before_they_are_left_out():
    from common.cli import command_parser, spelled_out

    parser = command_parser("x", "", overrides_help="overrides")
    for option in ("--submit", "--slurm", "--shard", "--shards"):
        parser.add_argument(option)
    argv = ["--sub", "slurm", "--slur=time=1", "--shard", "1/2", "--shards", "4", "a=b"]
    assert spelled_out(parser, argv) == ["--submit", "slurm", "--slurm=time=1", "--shard", "1/2", "--shards", "4",
                                         "a=b"]

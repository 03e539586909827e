"""docs/clusters.md on a real Slurm: jobs submitted with ``--submit slurm``, signalled, killed, requeued.

Each job is submitted as a user would (``train ... --submit slurm``, ``predict ... --submit
slurm --shards 4``, ``sweep ... --submit slurm --tasks 2``) to the local cluster of
``conftest.py``. Slurm holds a requeued job for about two minutes before it may start
again; the tests, like an operator in a hurry, move its start to now
(``scontrol update StartTime=now``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from PIL import Image

from common.lists import load_dataset, read_split
from common.paths import PROJECT_ROOT
from tests.commands import command_line
from tests.conftest import TINY_NETWORK
from tests.evaluate.conftest import centroid_model
from tests.train.runs.test_clusters import assert_same_weights
from tests.train.runs.test_preemption import saved_steps
from tools.slurm_local import LocalSlurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS = 79  # 1257 training digits in batches of 16
EVERY = 5  # checkpoint.every_steps
TIMEOUT = 180


def train_args(folder: Path, digits_root: Path, *extra: str) -> list[str]:
    network = folder / "tiny.yaml"
    network.write_text(TINY_NETWORK)
    return [f"network={network}", f"data.dataset={digits_root}", "epochs=2", "batch_size=16",
            f"checkpoint.every_steps={EVERY}", "augment.rotation=10", "--device", "cpu", "--no-progress", *extra]


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    """``pipenv run <name> <args>`` (the submitting side, on the login node)."""
    done = subprocess.run(command_line(name, *args), cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def submitted(out: str) -> list[str]:
    """The job IDs a submission printed."""
    return re.findall(r"job (\d+)", out)


def job(cluster: LocalSlurm, job_id: str) -> dict[str, str]:
    """``scontrol show job``'s fields (the cluster keeps ended jobs for 5 minutes)."""
    text = cluster.run("scontrol", "show", "job", "-o", job_id)
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def wait(what: str, check: Callable[[], object], timeout: float = TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def wait_ended(cluster: LocalSlurm, job_id: str) -> dict[str, str]:
    """Wait for a job to end (not pending, running or completing); its fields."""
    return wait(f"job {job_id} to end", lambda: (lambda f: f if f["JobState"] in (
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL") else None)(job(cluster, job_id)))


def assert_completed(cluster: LocalSlurm, job_id: str, output: Path | None = None) -> None:
    """Wait for a job to end; it must have completed (else its fields and the end of its output file say why)."""
    ended = wait_ended(cluster, job_id)
    said = output.read_text()[-3000:] if output is not None and output.is_file() else ""
    logs = [line for name in ("slurmctld.log", "slurmd.log") for line in (cluster.folder / name).read_text().splitlines()
            if f"JobId={job_id} " in line or f"StepId={job_id}." in line or f"[{job_id}." in line]
    assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), "\n".join([str(ended), said, *logs])


def job_steps_alive(job_id: str) -> bool:
    """Whether a ``slurmstepd`` of the job still runs on this node (its title: ``slurmstepd: [<job>.<step>]``)."""
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if entry.read_bytes().startswith(f"slurmstepd: [{job_id}.".encode()):
                return True
        except OSError:
            continue
    return False


def release_requeued(cluster: LocalSlurm, job_id: str, restarts: int) -> None:
    """Wait until the job is back in the queue after its ``restarts``-th requeue, and let it start now.

    Slurm holds a requeued job for two minutes, partly so that the node has cleaned up the previous run of it
    (slurmd refuses to launch a job whose last run's step daemons are still there: the job fails with exit 1).
    Here the start moves to now once they are gone.
    """
    wait(f"job {job_id} requeued {restarts} time(s)", lambda: (lambda f: f["JobState"] == "PENDING" and
                                                                int(f["Restarts"]) == restarts)(job(cluster, job_id)))
    wait(f"the step daemons of job {job_id} to end", lambda: not job_steps_alive(job_id))
    time.sleep(1)
    cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")


def run_folder(output: Path, name: str) -> Path:
    """The newest run named ``name`` (once its log exists)."""
    return wait(f"run {name}", lambda: sorted((output / "train").glob(f"{name}-*/log.txt"))[-1:])[0].parent


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def job_process(job_id: str, module: str) -> int:
    """The pid of the job's ``python -m <module>`` process on this node."""
    def find() -> int | None:
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit():
                    continue
                environ = (entry / "environ").read_bytes().split(b"\0")
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"SLURM_JOB_ID={job_id}".encode() in environ and command[1:3] == [b"-m", module.encode()]:
                return int(entry.name)
        return None
    return wait(f"the process of job {job_id}", find)


def test_a_signalled_job_is_requeued_twice_ends_bitwise_as_an_uninterrupted_one_and_a_later_requeue_trains_nothing(
        cluster, tmp_path, digits_root):
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    args = train_args(tmp_path, digits_root)
    (straight_id,) = submitted(run("train", *args, "--name", "straight", "--submit", "slurm",
                                   "--slurm", "cpus-per-task=1").stdout)
    (job_id,) = submitted(run("train", *args, "--name", "signalled", "--submit", "slurm",
                              "--slurm", "cpus-per-task=1", "--slurm", "time=30").stdout)
    run_dir = run_folder(output, "signalled")
    for restarts, step in ((1, 20), (2, STEPS + 30)):  # inside epoch 1, then inside epoch 2
        wait(f"step {step}", lambda: saved_steps(run_dir / "log.txt")[-1:] >= [step])
        cluster.run("scancel", "--signal=USR2", job_id)  # what --signal=USR2@<grace> does before the time limit
        release_requeued(cluster, job_id, restarts)
        stopped = manifest(run_dir)
        assert stopped["status"] == "preempted" and stopped["result"]["signal"] == "SIGUSR2"
        assert stopped["result"]["slurm"] == {"job": job_id, "restarts": restarts - 1, "output": str(
            output / "slurm" / f"train-signalled-{job_id}.out"), "stopped_for": "preemption", "requeued": True}
    assert_completed(cluster, job_id, run_dir / "slurm.out")
    assert_completed(cluster, straight_id)
    ended = manifest(run_dir)
    assert ended["status"] == "finished" and len(ended["resumed"]) == 2
    assert [r["epoch"] for r in ended["resumed"]] == [0, 1] and ended["result"]["slurm"]["restarts"] == 2
    assert (run_dir / "slurm.out").resolve() == output / "slurm" / f"train-signalled-{job_id}.out"
    assert_same_weights(run_dir, run_folder(output, "straight"))

    cluster.run("scontrol", "requeue", job_id)  # e.g. an operator requeues it again: nothing is trained
    release_requeued(cluster, job_id, 3)
    assert_completed(cluster, job_id, run_dir / "slurm.out")
    said = (run_dir / "slurm.out").read_text()
    assert [p.name for p in (output / "train").glob("signalled-*")] == [run_dir.name]
    assert "already ended (finished); nothing to train" in said


def test_a_job_killed_outright_is_requeued_by_its_script_and_loses_at_most_every_steps(cluster, tmp_path,
                                                                                          digits_root):
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    (job_id,) = submitted(run("train", *train_args(tmp_path, digits_root), "--name", "killed", "--submit", "slurm",
                              "--slurm", "cpus-per-task=1", "--slurm", "max-restarts=1").stdout)
    run_dir = run_folder(output, "killed")
    wait("step 50", lambda: saved_steps(run_dir / "log.txt")[-1:] >= [50])
    os.kill(job_process(job_id, "train"), signal.SIGKILL)  # out of memory, an operator: no checkpoint, no requeue
    killed_after = saved_steps(run_dir / "log.txt")[-1]
    release_requeued(cluster, job_id, 1)  # the script requeued it
    assert manifest(run_dir)["status"] == "running"  # the killed process wrote nothing more
    assert_completed(cluster, job_id, run_dir / "slurm.out")
    ended = manifest(run_dir)
    (restart,) = ended["resumed"]
    resumed_at = restart["epoch"] * STEPS + restart["step_in_epoch"]
    assert ended["status"] == "finished" and resumed_at == killed_after  # the newest recovery checkpoint
    assert resumed_at % EVERY == 0 and resumed_at >= 50  # so at most EVERY steps were lost


def write_photos(folder: Path, digits_root: Path, count: int = 40) -> list[Path]:
    """``count`` digit images as files to predict."""
    dataset = load_dataset(digits_root)
    folder.mkdir(parents=True)
    paths = []
    for index, sample in enumerate(read_split(dataset, "test")[:count]):
        path = folder / f"{index:03d}.png"
        Image.open(digits_root / sample.path).save(path)
        paths.append(path)
    return paths


def test_predict_as_an_array_of_four_shards_merged_by_a_dependent_job_equals_one_run(cluster, tmp_path, digits_root):
    """A shard fails on a broken image: the merge names it; fixed and requeued, it continues its stream."""
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    model = centroid_model(tmp_path / "digits.onnx", digits_root)
    photos = write_photos(tmp_path / "photos", digits_root)
    good = photos[25].read_bytes()  # index 25: shard 1 of 4, its 7th image
    photos[25].write_bytes(b"\x89PNG broken")
    options = ["--model", str(model), "--top-k", "3", "--batch-size", "2", "--workers", "1", "--on-unreadable", "error"]
    array_id, merge_id = submitted(run("predict", str(tmp_path / "photos"), *options, "--name", "week",
                                       "--submit", "slurm", "--shards", "4", "--slurm", "cpus-per-task=1").stdout)
    assert job(cluster, merge_id)["Dependency"].startswith(f"afterany:{array_id}")
    assert wait_ended(cluster, merge_id)["JobState"] == "FAILED"
    said = (output / "slurm" / f"predict-week-merge-{merge_id}.out").read_text()
    assert "week-shard-1-of-4: the shard is not finished" in said, said
    shard = output / "predict" / "week-shard-1-of-4"
    rows_before = (shard / "predictions.csv").read_text().count("\n")
    assert rows_before > 1  # the rows before the broken image were streamed

    photos[25].write_bytes(good)
    failed = [f["JobId"] for f in (job(cluster, f"{array_id}_{i}") for i in range(4)) if f["JobState"] == "FAILED"]
    assert len(failed) == 1
    cluster.run("scontrol", "requeue", failed[0])
    cluster.run("scontrol", "requeue", merge_id)
    release_requeued(cluster, failed[0], 1)
    assert_completed(cluster, failed[0])
    release_requeued(cluster, merge_id, 1)
    assert_completed(cluster, merge_id)
    record = json.loads((shard / "prediction.json").read_text())
    assert [r["done"] for r in record["resumed"]] == [rows_before - 1]  # continued, nothing predicted twice

    run("predict", str(tmp_path / "photos"), *options, "--name", "whole")
    merged, whole = output / "predict" / "week", output / "predict" / "whole"
    assert (merged / "predictions.csv").read_bytes() == (whole / "predictions.csv").read_bytes()


def test_a_sweep_as_an_array_of_two_tasks_shares_one_postgresql_study(cluster, postgres, tmp_path, digits_root):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n")
    network = tmp_path / "tiny.yaml"
    network.write_text(TINY_NETWORK)
    (array_id,) = submitted(run("sweep", "--space", str(space), "--study", "array", "--storage", postgres,
                                "--trials", "1", "--sampler", "random", "--dev", "--device", "cpu",
                                f"network={network}", f"data.dataset={digits_root}", "epochs=1", "batch_size=32",
                                "--submit", "slurm", "--tasks", "2", "--slurm", "cpus-per-task=1").stdout)
    for task in range(2):
        assert_completed(cluster, f"{array_id}_{task}")
    from train.experiments.study import with_installed_driver

    study = optuna.load_study(study_name="array", storage=with_installed_driver(postgres))
    trials = study.get_trials()
    assert len(trials) == 2 and {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.params["optim.lr"] for t in trials}) == 2 and len({t.user_attrs["sampler_seed"] for t in trials}) == 2
    best = Path(study.best_trial.user_attrs["run_dir"])
    listed = run("runs").stdout
    rows = {line.split()[0]: line for line in listed.splitlines() if line.startswith("array")}
    assert set(rows) == {Path(t.user_attrs["run_dir"]).name for t in trials}
    assert f"{study.best_value:.4f}" in rows[best.name]
    assert manifest(best)["result"]["best"]["value"] == pytest.approx(study.best_value)


def test_torchrun_under_srun_trains_two_processes_on_one_node(cluster, tmp_path, digits_root):
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    args = [a for a in train_args(tmp_path, digits_root) if a != "epochs=2"] + ["epochs=1"]
    (job_id,) = submitted(run("train", *args, "--name", "pair", "--submit", "slurm", "--slurm", "cpus-per-task=2",
                              "--slurm", "processes-per-node=2").stdout)
    assert_completed(cluster, job_id, output / "slurm" / f"train-pair-{job_id}.out")
    ended = manifest(run_folder(output, "pair"))
    assert ended["status"] == "finished" and ended["world_size"] == 2 and ended["result"]["ranks_in_sync"]

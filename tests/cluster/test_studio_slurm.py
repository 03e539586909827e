"""The studio's Slurm executor on the local single-node cluster: a job launched from the form is an sbatch of the
same train command, it is followed with squeue until the run ends, and cancel (scancel) leaves the run preempted
with a checkpoint, continued by the run's own submission."""

from __future__ import annotations

import pytest

from common.run_folder import RunFolder, RunStatus
from tests.studio.conftest import make_studio  # noqa: F401 (a fixture)
from tests.studio.test_runs_live import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_a_job_goes_to_slurm_and_is_followed_until_its_run_ends(cluster, make_studio):  # noqa: F811
    signed = make_studio(executor="slurm")
    store = signed.studio.store
    assert signed.post("/launch", {"name": "on-slurm", "dev": "on", "epochs": "2"}).status_code == 303
    job = wait_for(lambda: (lambda j: j if j.scheduler_id else None)(store.all()[0]), 120, "the sbatch")
    assert job.executor == "slurm" and job.scheduler_id.isdigit()
    assert "Submitted" in open(job.log).read() or job.scheduler_id in open(job.log).read()
    wait_for(lambda: store.get(job.id).state == "ended", 300, "the Slurm job to end")
    ended = store.get(job.id)
    assert ended.message.startswith("run finished"), ended.message
    assert RunFolder(ended.run_dir).status() is RunStatus.FINISHED


def test_cancel_is_scancel_and_continue_resubmits_the_run(cluster, make_studio):  # noqa: F811
    signed = make_studio(executor="slurm")
    store = signed.studio.store
    signed.post("/launch", {"name": "cancelled", "dev": "on", "epochs": "300"})
    job = store.all()[0]
    run_dir = wait_for(lambda: store.get(job.id).run_dir, 180, "the run folder")
    wait_for(lambda: RunFolder(run_dir).read_metrics(), 180, "a first epoch")
    assert signed.post(f"/jobs/{job.id}/cancel").status_code == 303
    wait_for(lambda: store.get(job.id).state == "ended", 180, "the cancelled job to leave squeue")
    run = RunFolder(run_dir)
    assert run.status() is RunStatus.PREEMPTED and (run.checkpoints_dir / "last.pt").is_file()
    assert signed.post(f"/runs/{run.name}/continue").status_code == 303
    again = store.all()[0]
    assert again.kind == "continue" and again.arguments == job.arguments
    epochs = len(run.read_metrics())
    wait_for(lambda: len(run.read_metrics()) > epochs, 300, "an epoch of the continued run")
    signed.post(f"/jobs/{again.id}/cancel")
    wait_for(lambda: store.get(again.id).state == "ended", 180, "the second cancel")
    assert len(run.read_manifest().resumed) >= 1


def test_the_queue_shows_the_command_slurm_runs(make_studio):  # noqa: F811
    signed = make_studio(executor="slurm", slurm=["time=01:00:00"])
    signed.studio.scheduler.stop()  # nothing is submitted: only the queue's record is looked at
    signed.post("/launch", {"name": "shown", "dev": "on"})
    job = signed.studio.store.all()[0]
    assert job.extra["command"].endswith("--no-progress --submit slurm --slurm time=01:00:00")

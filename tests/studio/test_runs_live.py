"""Jobs run for real: launched from the form, watched over server-sent events, cancelled (recorded preempted,
with a checkpoint), continued with one click, and found again by a studio started after the first one died."""

from __future__ import annotations

import json
import time

import pytest

from common.run_folder import RunFolder, RunStatus
from studio.executors import LocalExecutor, Scheduler
from studio.jobs import JobStore

pytestmark = pytest.mark.slow


def wait_for(condition, timeout: float = 240.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def job_state(store: JobStore, job_id: int) -> str:
    return store.get(job_id).state


def events(client, name: str, last_id: str | None = None, stop_after: int = 1) -> list[tuple[str, dict]]:
    """The events a page gets (id, data), up to ``stop_after`` data events or the end."""
    headers = {"last-event-id": last_id} if last_id else {}
    found, event_id = [], ""
    with client.stream("GET", f"/runs/{name}/events", headers=headers) as stream:
        for line in stream.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: ") and line != "data: {}":
                found.append((event_id, json.loads(line[6:])))
                if len(found) >= stop_after:
                    break
            elif line.startswith("event: end"):
                break
    return found


def test_a_run_launched_from_the_form_is_queued_run_and_watched(signed):
    response = signed.post("/launch", {"name": "quick", "dev": "on", "epochs": "2"})
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    job = signed.studio.store.all()[0]
    assert job.arguments == ["--name", "quick", "--dev", "epochs=2", "--no-progress"]
    wait_for(lambda: job_state(signed.studio.store, job.id) == "ended", what="the job to end")
    job = signed.studio.store.get(job.id)
    run = RunFolder(job.run_dir)
    assert job.returncode == 0 and job.message.startswith("run finished")
    assert (run.path / "job.log").read_text() == open(job.log).read()  # the job's output, in the run folder
    assert run.name in signed.client.get("/runs").text
    page = signed.client.get(f"/runs/{run.name}")
    assert page.status_code == 200 and 'id="chart-loss"' in page.text
    (event_id, update), = events(signed.client, run.name)
    assert update["status"] == "finished" and len(update["steps"]) >= 2 and len(update["metrics"]) == 2
    assert event_id == f"{len(update['steps'])}.2"
    assert "samples/train_batch.png" in update["figures"]
    # a page that reconnects with the id it had gets nothing again; one that lost points gets exactly those
    assert events(signed.client, run.name, event_id)[0][1]["steps"] == []
    resent = events(signed.client, run.name, "1.1")[0][1]
    assert len(resent["steps"]) == len(update["steps"]) - 1 and len(resent["metrics"]) == 1


def test_cancel_records_preempted_and_continue_finishes_the_same_run(signed):
    store = signed.studio.store
    signed.post("/launch", {"name": "long", "dev": "on", "epochs": "300"})
    job = store.all()[0]
    run_dir = wait_for(lambda: store.get(job.id).run_dir, what="the run folder")
    wait_for(lambda: RunFolder(run_dir).read_metrics(), what="a first epoch")
    assert signed.post(f"/jobs/{job.id}/cancel").status_code == 303
    wait_for(lambda: job_state(store, job.id) == "ended", what="the cancelled job to end")
    run = RunFolder(run_dir)
    assert run.status() is RunStatus.PREEMPTED and (run.checkpoints_dir / "last.pt").is_file()
    assert "Continue this run" in signed.client.get(f"/runs/{run.name}").text
    epochs_before = len(run.read_metrics())
    assert signed.post(f"/runs/{run.name}/continue").status_code == 303
    continued = store.all()[0]
    assert continued.kind == "continue" and continued.arguments[:2] == ["--resume", str(run_dir)]
    wait_for(lambda: store.get(continued.id).state in ("running", "ended"), what="the continued job to start")
    wait_for(lambda: len(run.read_metrics()) > epochs_before, what="an epoch after the continue")
    signed.post(f"/jobs/{continued.id}/cancel")
    wait_for(lambda: job_state(store, continued.id) == "ended", what="the second cancel")
    assert len(run.read_manifest().resumed) == 1


def test_a_queued_job_waits_for_a_free_slot_and_can_be_removed(signed):
    store = signed.studio.store
    signed.post("/launch", {"name": "first", "dev": "on", "epochs": "300"})
    signed.post("/launch", {"name": "second", "dev": "on", "epochs": "1"})
    second, first = store.all()
    wait_for(lambda: store.get(first.id).state == "running", what="the first job to start")
    time.sleep(2.5)
    assert store.get(second.id).state == "queued"  # one slot: it waits
    signed.post(f"/jobs/{second.id}/cancel")
    assert store.get(second.id).state == "removed"
    signed.post(f"/jobs/{first.id}/cancel")
    wait_for(lambda: job_state(store, first.id) == "ended", what="the first job to end")
    assert store.get(first.id).message in ("cancelled before the run began", ) or "preempted" in store.get(first.id).message


def test_a_studio_started_again_finds_its_running_job(tmp_path):
    from common.paths import output_dir
    store = JobStore(output_dir() / "studio" / "jobs.sqlite3")
    first = Scheduler(store, LocalExecutor())
    job = store.add("found", ["--name", "found", "--dev", "epochs=300", "--no-progress"])
    first.tick()
    wait_for(lambda: (first.tick(), store.get(job.id).run_dir)[1], what="the run folder")
    pid = store.get(job.id).pid
    # the studio dies here: a new one (its own executor, its own connection) knows only the database
    again = Scheduler(JobStore(output_dir() / "studio" / "jobs.sqlite3"), LocalExecutor())
    again.tick()
    assert store.get(job.id).state == "running"
    again.cancel(job.id)
    wait_for(lambda: (again.tick(), store.get(job.id).state == "ended")[1], what="the job to end")
    found = store.get(job.id)
    assert found.pid == pid and found.returncode is None  # not its child: the run's own status says how it ended
    assert found.message.startswith("run preempted")


def test_a_job_whose_network_was_deleted_meanwhile_fails_with_training_s_message(tmp_path):
    from common.paths import output_dir
    store = JobStore(output_dir() / "studio" / "jobs.sqlite3")
    scheduler = Scheduler(store, LocalExecutor())
    job = store.add("orphan", ["--name", "orphan", "--dev", "network=deleted_meanwhile", "--no-progress"])
    wait_for(lambda: (scheduler.tick(), store.get(job.id).state == "failed")[1], 120, "the job to fail")
    failed = store.get(job.id)
    assert failed.returncode == 2 and "deleted_meanwhile.yaml: network config not found" in failed.message
    assert not list((output_dir() / "train").glob("orphan-*"))  # nothing was written for it

"""The run folder's one owner: an old run still reads, damage is named, every run status round-trips."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from common.errors import UserError
from common.run_folder import ENDED, RESUMABLE, RunFolder, RunManifest, RunStatus, find_run, list_runs

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy"
"""config.yaml, manifest.json and metrics.csv of a default digits run written before RunFolder existed."""


@pytest.fixture
def legacy_run(tmp_path: Path) -> RunFolder:
    folder = tmp_path / "train" / "digits_cnn-20261125-114158"
    (folder / "checkpoints").mkdir(parents=True)
    for name in ("config", "manifest", "metrics"):
        source = next(LEGACY.glob(f"{name}_v1.*"))
        shutil.copy(source, folder / f"{name}{source.suffix}")
    return RunFolder(folder)


def test_a_run_written_before_the_typed_owner_reads(legacy_run):
    view = legacy_run.read_run_config()
    assert (view.network, view.dataset, view.split("val"), view.on_unreadable) == ("digits_cnn", "digits", "val", "error")
    assert len(view.network_hash) == 64 and view.get("epochs") == 60  # as a training config: tests/train/parts/
    manifest = legacy_run.read_manifest()
    assert manifest.run == legacy_run.name and manifest.status == "finished" and manifest.init is None
    metrics = legacy_run.read_metrics()
    assert len(metrics) == 60 and metrics[-1]["epoch"] == 60.0
    best = legacy_run.best()
    assert best == manifest.result["best"] and best["metric"] == "val/loss"
    assert legacy_run.status() == "finished"
    assert find_run("last", legacy_run.path.parent).path == legacy_run.path


def test_the_best_epoch_comes_from_the_metrics_while_a_run_is_unfinished(legacy_run):
    manifest = legacy_run.read_manifest()
    manifest.result, manifest.status = None, "running"
    legacy_run.write_manifest(manifest)
    rows = legacy_run.read_metrics()
    expected = min(rows, key=lambda r: r["val/loss"])
    assert legacy_run.best() == {"metric": "val/loss", "value": expected["val/loss"], "epoch": int(expected["epoch"])}
    assert legacy_run.status() == "crashed"  # its process (a pid of this host's past) is gone


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(format_version=7), r"manifest format_version 7; this code reads 1"),
    (lambda m: m.pop("started"), r"not a run manifest of this project \(missing \['started'\]\)"),
    (lambda m: m.update(colour="blue"), r"not a run manifest of this project \(unknown \['colour'\]\)"),
])
def test_a_damaged_manifest_is_named(legacy_run, change, message):
    data = json.loads(legacy_run.manifest_path.read_text())
    change(data)
    legacy_run.manifest_path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=rf"manifest\.json: {message}"):
        legacy_run.read_manifest()


def test_a_bad_metrics_row_is_named_by_line(legacy_run):
    lines = legacy_run.metrics_path.read_text().splitlines()
    lines[3] = lines[3].replace(",", ",oops,", 1)
    legacy_run.metrics_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"metrics\.csv:4: "):
        legacy_run.read_metrics()


def test_runs_are_listed_by_start_and_a_missing_run_is_named(legacy_run, tmp_path):
    newer = RunFolder.create("newer", legacy_run.path.parent)
    newer.config_path.write_text(legacy_run.config_path.read_text())
    manifest = legacy_run.read_manifest()
    manifest.run, manifest.started = newer.name, "2099-01-01T00:00:00+00:00"
    newer.write_manifest(manifest)
    assert [r.name for r in list_runs(legacy_run.path.parent)] == [legacy_run.name, newer.name]
    with pytest.raises(UserError, match=r"nothing: not a run folder"):
        find_run("nothing", legacy_run.path.parent)


def test_a_running_run_is_crashed_once_its_lock_is_free(legacy_run):
    manifest = legacy_run.read_manifest()
    manifest.status = "running"
    legacy_run.write_manifest(manifest)
    with legacy_run.exclusive():
        assert legacy_run.status() == "running"
    assert legacy_run.status() == "crashed"


@pytest.mark.parametrize("status", list(RunStatus))
def test_every_status_round_trips_through_a_written_manifest(tmp_path, status):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.write_manifest(RunManifest(run=folder.name, status=status, started="2026-01-01T00:00:00+00:00"))
    assert json.loads(folder.manifest_path.read_text())["status"] == status.value
    assert folder.read_manifest().status is status


def test_ended_resumable_and_succeeded_are_the_documented_sets():
    assert {s.value for s in RunStatus if s.ended} == {"finished", "stopped_early", "pruned", "profiled", "diverged"}
    assert {s.value for s in RunStatus if s.resumable} == {"interrupted", "preempted", "crashed", "failed"}
    assert {s.value for s in RunStatus if s.succeeded} == {"finished", "stopped_early", "pruned", "profiled"}
    assert {s for s in RunStatus if s.ended} == ENDED and {s for s in RunStatus if s.resumable} == RESUMABLE
    running = RunStatus.RUNNING
    assert not (running.ended or running.resumable or running.succeeded)  # it has not stopped
    assert set(RunStatus) == ENDED | RESUMABLE | {running} and ENDED.isdisjoint(RESUMABLE)


def test_an_unknown_status_in_a_manifest_is_refused_naming_the_file_and_the_known_values(legacy_run):
    data = json.loads(legacy_run.manifest_path.read_text())
    data["status"] = "paused"
    legacy_run.manifest_path.write_text(json.dumps(data))
    known = [status.value for status in RunStatus]
    with pytest.raises(UserError, match=rf"{re.escape(legacy_run.name)}/manifest\.json: status 'paused' is not one of "
                                        rf"{re.escape(str(known))}$"):
        legacy_run.read_manifest()

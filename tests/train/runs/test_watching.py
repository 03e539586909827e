"""Watching a run end to end: the files and events a run writes, the profiler, resume, and the trackers teams use."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from common.errors import UserError
from common.files import read_csv
from common.paths import display_path
from common.run_folder import PER_CLASS_COLUMNS, RunFolder
from train.__main__ import main
from train.experiments.runs import format_show, load_run
from train.loop.hooks import Hook
from train.run import RunOptions, resume, train
from train.watch.trackers.wandb import WandbTracker

CLASSES = ["$x_{1}^{0}$", "<script>x</script>", 'a,"b"', "=cmd|' /C calc'!A0", "\u65e5\u672c", "a$b$c", "$", "%s {0}",
           "x" * 60, "plain"]
"""Class names that break naive drawing, HTML, CSV or tracker keys (one per line of classes.txt)."""

QUIET = RunOptions(progress=False, device="cpu")
DEV = ("data.train_split=dev", "data.val_split=dev")


@pytest.fixture
def hostile_digits(digits_root: Path, tmp_path: Path) -> Path:
    """The bundled digits with hostile class names."""
    root = tmp_path / "hostile"
    shutil.copytree(digits_root, root)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES), encoding="utf-8")
    return root


def is_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def event_tags(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    events.Reload()
    return events


@pytest.mark.slow
def test_a_watched_run_writes_curves_figures_and_events(fast_config, hostile_digits):
    runs = Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train"
    curves = []

    class Remember(Hook):  # a caller's hook: its epoch's curves are drawn after it, its run's last before its end
        name = "remember"

        def after_epoch(self, run, row):
            curves.extend(hashlib.sha256(path.read_bytes()).hexdigest() for path in runs.glob("*/curves.png"))

        def after_run(self, run, status):
            self.after_epoch(run, {})

    config = fast_config(f"data.dataset={hostile_digits}", *DEV, "epochs=3", "log.every_steps=1",
                         "log.histograms_every_steps=2", "log.figure_budget=1")
    result = train(config, RunOptions(progress=False, device="cpu", hooks=(Remember(),)))
    run = result.run_dir
    assert len(set(curves)) == 3  # curves.png redrawn after every epoch
    for name in ("samples/train_batch.png", "samples/confusion.png", "samples/val_worst.png", "curves.png"):
        width, height = is_png(run / name)
        assert width > 200 and height > 200, name
    steps = list(csv.DictReader((run / "steps.csv").open()))
    assert [int(row["step"]) for row in steps] == list(range(1, 13))  # 100 dev images, batch 32: 4 steps per epoch
    assert float(steps[5]["epoch"]) == 1.5 and all(float(row["grad_norm"]) > 0 for row in steps)
    header, *cells = read_csv(run / "per_class.csv")
    per_class = [dict(zip(header, row)) for row in cells]
    assert header == list(PER_CLASS_COLUMNS) and len(per_class) == 30
    assert [row["name"] for row in per_class[:10]] == CLASSES  # names survive CSV as they are, read back
    raw = list(csv.DictReader((run / "per_class.csv").open(encoding="utf-8")))
    assert raw[3]["name"] == "'" + CLASSES[3]  # a spreadsheet shows the formula as text
    for epoch in (1, 2, 3):  # each epoch's validation pass on its own: the 100 dev images
        assert sum(int(row["support"]) for row in per_class if row["epoch"] == str(epoch)) == 100
    metrics = list(csv.DictReader((run / "metrics.csv").open()))
    fractions = [float(v) for k, v in metrics[-1].items() if k.startswith("time/")]
    assert len(fractions) == 9 and 0.5 < sum(fractions) <= 1.0001 and float(metrics[-1]["time/forward_fraction"]) > 0
    assert float(metrics[-1]["system/cpu_cores_used"]) > 0 and float(metrics[-1]["system/rss_gb"]) > 0.05
    assert 0 <= float(metrics[-1]["val/macro_f1"]) <= 1 and metrics[-1]["system/gpu_utilization"] == ""
    events = event_tags(run)
    scalars = set(events.Tags()["scalars"])
    assert {"step/train_loss", "step/lr", "step/samples_per_second", "norms/grad_total", "norms/weight/features.0",
            "time/data_wait_fraction", "system/cpu_cores_used", "val/macro_f1", "final/val/loss", "best/val/loss",
            "val_class/f1/00__x__1_0_", "val_class/recall/09_plain"} <= scalars
    assert [e.step for e in events.Scalars("val/loss")] == [4, 8, 12]
    assert [e.step for e in events.Scalars("step/train_loss")] == list(range(1, 13))
    assert set(events.Tags()["images"]) == {"train/augmented_batch", "val/confusion_matrix", "val/most_wrong"}
    assert {"weights/features.0", "grads/classifier"} <= set(events.Tags()["histograms"])
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    shown = format_show(load_run(RunFolder(run)))
    assert f"curves: {display_path(run / 'curves.png')}" in shown


@pytest.mark.slow
def test_train_profile_of_a_run_shorter_than_its_warm_up_is_still_taken_and_says_how(capsys, caplog, tiny_network,
                                                                                       digits_root):
    caplog.set_level(logging.INFO)
    code = main([f"network={tiny_network}", f"data.dataset={digits_root}", "--dev", "epochs=1", "--profile",
                 "--no-progress", "--device", "cpu"])  # the dev split: 2 steps, against a warm-up of 5 and 30 steps
    assert code == 0
    said = capsys.readouterr().out + caplog.text
    assert "profile: the run has 2 step(s), so the warm-up is 1 step(s), not 5" in said
    assert "profile of 1 steps (steps 2-2 after a warm-up of 1) on cpu" in said
    assert "(the run ended after 1 of the 30 steps asked for)" in said
    run = next((Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").iterdir())
    assert json.loads((run / "profile" / "summary.json").read_text())["steps"] == 1


@pytest.mark.slow
def test_profile_prints_a_breakdown_and_the_bottleneck_and_writes_a_trace(capsys, tiny_network, digits_root):
    code = main([f"network={tiny_network}", f"data.dataset={digits_root}", "--dev", "epochs=30", "batch_size=16",
                 "--profile", "8", "--no-progress", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "profile of 8 steps (steps 6-13 after a warm-up of 5) on cpu" in printed
    for phase in ("waiting for data", "host-to-device copy", "forward", "backward", "optimiser", "logging",
                  "checkpointing"):
        assert f"  {phase} " in printed
    (bottleneck,) = [line for line in printed.splitlines() if line.startswith("bottleneck: ")]
    assert bottleneck.split(": ")[1] in ("compute-bound", "CPU-starved", "logging-bound", "checkpoint-bound",
                                      "input-bound", "augmentation-bound", "optimiser-bound", "validation-bound")
    assert "aten::" in printed.split("top operators")[1]
    run = next((Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").iterdir())
    (trace,) = (run / "profile").glob("*.pt.trace.json")
    names = {event.get("name") for event in json.loads(trace.read_text())["traceEvents"]}
    assert {"phase:data_wait", "phase:forward", "phase:backward", "phase:optimizer", "phase:validation"} <= names
    summary = json.loads((run / "profile" / "summary.json").read_text())
    assert summary["steps"] == 8 and sum(summary["fractions"].values()) == pytest.approx(1.0)
    assert json.loads((run / "manifest.json").read_text())["status"] == "profiled"


@pytest.mark.slow
def test_a_resumed_run_continues_its_logged_steps_and_events(fast_config):
    first = train(fast_config(*DEV, "log.every_steps=2"), QUIET)
    folder = RunFolder(first.run_dir)
    folder.append_steps([{"step": 99, "epoch": 9.0, "train/loss": 1.0}])  # written after the checkpoint, then killed
    folder.append_per_class([{"epoch": 7, "class": 0, "name": "0", "f1": 0.5}])
    resume(str(first.run_dir), ["epochs=3"], ["epochs"], QUIET)
    assert [int(row["step"]) for row in folder.read_steps()] == [2, 4, 6, 8, 10, 12]
    assert sorted({int(row["epoch"]) for row in folder.read_per_class()}) == [1, 2, 3]
    events = event_tags(first.run_dir)
    assert [e.step for e in events.Scalars("val/loss")] == [4, 8, 12]


def test_a_missing_tracker_package_stops_before_anything_is_written(fast_config, monkeypatch):
    monkeypatch.setattr(WandbTracker, "requires", ("wandb_is_not_installed_here",))
    with pytest.raises(UserError, match=r"pipenv sync --categories=\"train trackers\""):
        train(fast_config(*DEV, "log.trackers=[tensorboard,wandb]"), QUIET)
    assert not (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").exists()


# -- Weights & Biases, offline -----------------------------------------------------------------
def wandb_records(path: Path) -> list:
    """The records of a W&B run file (LevelDB log format: 32 KiB blocks of 7-byte-headed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, records, pending = 7, [], b""
    while offset + 7 <= len(data):
        if 32768 - offset % 32768 < 7:  # a block's tail too short for a header is padding
            offset += 32768 - offset % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + 7])
        if offset + 7 + length > len(data):  # still being written
            break
        pending += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def finished_records(path: Path, wait: float = 60.0) -> list:
    """The records of a finished W&B run file: W&B's service may write it a moment after ``finish()`` returns."""
    deadline = time.monotonic() + wait
    while True:
        records = wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def keys(items) -> set[str]:
    """The keys of W&B record items (``a/b`` keys are stored as nested keys)."""
    return {item.key or "/".join(item.nested_key) for item in items}


@pytest.mark.slow
def test_wandb_offline_gets_config_curves_grids_and_the_manifest(fast_config, tmp_path, monkeypatch):
    for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = train(fast_config(*DEV, "log.trackers=[tensorboard,wandb]", "log.every_steps=2"), QUIET)
    (offline,) = (result.run_dir / "wandb").glob("offline-run-*")
    records = finished_records(next(offline.glob("run-*.wandb")))
    history = [keys(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    logged = set().union(*history)
    assert {"step/train_loss", "val/loss", "val/macro_f1", "norms/grad_total", "time/forward_fraction"} <= logged
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == result.run_dir.name and "optim" in keys(run.config.update)
    files = {f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files}
    assert {"manifest.json", "config.yaml", "metrics.csv", "curves.png"} <= files
    assert any(path.startswith("media/images/train/augmented_batch") for path in files)
    summary = set().union(*(keys(r.summary.update) for r in records if r.WhichOneof("record_type") == "summary"))
    assert {"final/val/loss", "best/val/loss", "best_checkpoint"} <= summary


# -- MLflow, against a real server ---------------------------------------------------------------
@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free localhost port, SQLite and an artifact folder in tmp; its URI."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--artifacts-destination", str(tmp_path / "artifacts")]
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers: the group this fixture started
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_mlflow_server_gets_params_metrics_and_artifacts(fast_config, mlflow_server):
    from mlflow.tracking import MlflowClient

    result = train(fast_config(*DEV, "log.trackers=[mlflow]", f"log.mlflow.tracking_uri={mlflow_server}",
                               "log.mlflow.experiment=watch-test", "optim.lr=0.02"), QUIET)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("watch-test")
    (found,) = client.search_runs([experiment.experiment_id], f"tags.`imagepipe.run` = '{result.run_dir.name}'")
    assert found.info.status == "FINISHED" and found.data.params["optim.lr"] == "0.02"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val/loss")] == [4, 8]
    assert "final/val/accuracy" in found.data.metrics and "step/train_loss" in found.data.metrics
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "run")}
    assert {"run/config.yaml", "run/manifest.json", "run/curves.png", "run/best_checkpoint.json"} <= artifacts
    card = json.loads(Path(client.download_artifacts(found.info.run_id, "run/best_checkpoint.json")).read_text())
    sidecar = (result.run_dir / "checkpoints" / "best.pt.sha256").read_text().split()[0]
    assert card["sha256"] == sidecar and card["metric"] == "val/loss"
    assert client.list_artifacts(found.info.run_id, "val/confusion_matrix")

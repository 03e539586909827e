"""Long runs on shared machines, end to end on the digits: signals at seeded random steps, SIGKILL with
recovery checkpoints, a signal during a checkpoint write, and --auto-resume. Every stopped run is
continued and must end with bitwise the same weights and metrics as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.cli import run_main
from common.files import atomic_write, atomic_write_bytes
from common.integrity import verify_sha256
from common.lists import load_dataset
from common.paths import PROJECT_ROOT
from common.run_folder import RunStatus
from networks import load_network_config
from networks.checkpoint import read_checkpoint
from tests.commands import command_main
from train.config import load_train_config
from train.metrics import EPOCH_METRICS
from train.loop.hooks import Hook
from train.run import RunOptions, resume, train
from train.data.packs import write_pack

QUIET = RunOptions(progress=False, device="cpu")
TIMING = tuple(spec.name for spec in EPOCH_METRICS if spec.machine)
STEPS_PER_EPOCH = 79  # 1257 training digits in batches of 16
SAVED = re.compile(r"recovery checkpoint in epoch (\d+) at step (\d+) of (\d+)")


def base_args(network: Path, dataset: Path, *extra: str) -> list[str]:
    """A 3-epoch run of the tiny network with augmentation, dropout and label smoothing (all random or exact)."""
    return [f"network={network}", f"data.dataset={dataset}", "epochs=3", "batch_size=16", "augment.rotation=10",
            "augment.translate=0.1", "optim.label_smoothing=0.1", *extra]


def saved_steps(log: Path) -> list[int]:
    """Global optimiser steps of the recovery checkpoints a run's log reports."""
    text = log.read_text() if log.is_file() else ""
    return [(int(e) - 1) * int(n) + int(s) for e, s, n in SAVED.findall(text)]


def start_run(args: list[str], output: Path, stderr: Path) -> subprocess.Popen:
    """``python -m train`` in its own process group (as a terminal's foreground job is)."""
    return subprocess.Popen([sys.executable, "-m", "train", *args, "--device", "cpu", "--no-progress"],
                            cwd=PROJECT_ROOT, env={**os.environ, "IMAGEPIPE_OUTPUT": str(output)},
                            stdout=subprocess.DEVNULL, stderr=stderr.open("w"), start_new_session=True)


def wait_for_step(process: subprocess.Popen, output: Path, step: int) -> Path:
    """Wait until the run's log reports a recovery checkpoint at ``step`` or later; returns the run folder."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        for log in (output / "train").glob("*/log.txt"):
            if saved_steps(log) and saved_steps(log)[-1] >= step:
                return log.parent
        time.sleep(0.005)
    raise AssertionError(f"the run ended or stalled before step {step} (exit {process.poll()})")


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as stream:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(stream)]


def assert_same_run(a: Path, b: Path) -> None:
    """Bitwise the same final weights (and EMA bookkeeping) and the same metrics in every epoch."""
    first, second = (read_checkpoint(r / "checkpoints" / "last.pt") for r in (a, b))
    for key in ("model", *(k for k in ("model_raw",) if k in first)):
        assert first[key].keys() == second[key].keys()
        assert [k for k in first[key] if not torch.equal(first[key][k], second[key][k])] == [], key
    assert rows(a) == rows(b)


def straight_run(args: list[str], output: Path, monkeypatch) -> Path:
    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(output))
    return train(load_train_config(overrides=args), QUIET).run_dir


@pytest.fixture
def packed_digits(digits_root, tmp_path, tiny_network) -> Path:
    """A copy of the digits with a pack at the tiny network's input size."""
    shutil.copytree(digits_root, tmp_path / "digits")
    dataset = load_dataset(tmp_path / "digits")
    write_pack(dataset, load_network_config(tiny_network).input, ["train", "val"])
    return dataset.root


CASES = [  # signal, exit status, data path, extra settings
    ("SIGTERM", 143, [], ["finetune.ema_decay=0.9"]),
    ("SIGINT", 130, ["data.in_memory=false", "data.num_workers=1"], []),  # decoded per batch, in a worker process
    ("SIGUSR1", 138, ["data.in_memory=false", "data.pack=require"], []),  # read from the pack per batch
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "status", "data", "extra"), CASES, ids=[c[0] for c in CASES])
def test_a_signal_inside_an_epoch_stops_with_a_checkpoint_that_resumes_exactly(
        tiny_network, digits_root, tmp_path, monkeypatch, request, name, status, data, extra):
    dataset = request.getfixturevalue("packed_digits") if "data.pack=require" in data else digits_root
    args = base_args(tiny_network, dataset, *data, *extra)
    target = random.Random(name).randint(STEPS_PER_EPOCH + 20, STEPS_PER_EPOCH + 40)  # inside epoch 2
    process = start_run([*args, "checkpoint.every_steps=3", "--name", "sig"], tmp_path / "stopped",
                        tmp_path / "stderr.txt")
    run_dir = wait_for_step(process, tmp_path / "stopped", target)
    os.killpg(process.pid, getattr(signal, name))  # the whole group, as Ctrl-C in a terminal does
    if name == "SIGTERM":
        os.kill(process.pid, signal.SIGTERM)  # a second one, while it stops
    assert process.wait(timeout=300) == status
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and f"{name}: stopping after this optimiser step" in err
    checkpoint = read_checkpoint(run_dir / "checkpoints" / "last.pt")
    position = checkpoint["position"]
    assert position is not None and 0 < position["step_in_epoch"] < STEPS_PER_EPOCH
    assert checkpoint["step"] == checkpoint["epoch"] * STEPS_PER_EPOCH + position["step_in_epoch"] >= target
    log = (run_dir / "log.txt").read_text()
    stopped = [line for line in log.splitlines() if "continue with: pipenv run train --resume" in line]
    assert len(stopped) == 1 and f"by {name} in epoch {checkpoint['epoch'] + 1} at step" in stopped[0]
    manifest = run_dir.joinpath("manifest.json").read_text()
    assert f'"status": "{"interrupted" if name == "SIGINT" else "preempted"}"' in manifest

    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "stopped"))
    resumed = resume(str(run_dir), options=QUIET)
    assert resumed.status == "finished" and resumed.epochs_completed == 3
    assert_same_run(run_dir, straight_run(args, tmp_path / "straight", monkeypatch))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_loses_at_most_the_steps_between_recovery_checkpoints(tiny_network, digits_root, tmp_path,
                                                                      monkeypatch, seed):
    every = 4
    args = base_args(tiny_network, digits_root)
    rng = random.Random(seed)
    process = start_run([*args, f"checkpoint.every_steps={every}", "--name", "killed"], tmp_path / "killed",
                        tmp_path / "stderr.txt")
    run_dir = wait_for_step(process, tmp_path / "killed", rng.randint(30, 150))
    time.sleep(rng.uniform(0.0, 0.2))
    process.kill()
    process.wait(timeout=60)
    logged = saved_steps(run_dir / "log.txt")
    skipped = [s for s in range(every, logged[-1] + 1, every) if s % STEPS_PER_EPOCH]  # an epoch's end saves anyway
    assert logged == skipped, "a recovery checkpoint was missed"
    last = run_dir / "checkpoints" / "last.pt"
    assert verify_sha256(last, required=True)
    checkpoint = read_checkpoint(last)
    # The newest complete save is on disk (the one after it may have finished after the log was read). The
    # process had done fewer than `every` steps more: at `every` more it would have saved again.
    assert checkpoint["step"] in (logged[-1], logged[-1] + every) or checkpoint["position"] is None

    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "killed"))
    assert resume(str(run_dir), options=QUIET).status == "finished"
    assert not list(last.parent.glob(".*.tmp"))
    assert_same_run(run_dir, straight_run(args, tmp_path / "straight", monkeypatch))


@pytest.mark.slow
def test_signals_during_the_checkpoint_write_change_nothing_in_it(tiny_network, digits_root, tmp_path, monkeypatch):
    """A SIGTERM arrives half-way through writing a recovery checkpoint, a SIGINT and another SIGTERM
    half-way through writing the checkpoint of the stop itself: every write completes, nothing raises."""
    writes = []

    def interrupted_write(path: Path, data: bytes) -> None:
        def write(stream) -> None:
            stream.write(data[: len(data) // 2])
            for signum in {2: [signal.SIGTERM], 3: [signal.SIGINT, signal.SIGTERM]}.get(len(writes), []):
                os.kill(os.getpid(), signum)  # handled here, between the two halves
            stream.write(data[len(data) // 2:])

        writes.append(path.name)
        atomic_write(path, write)

    monkeypatch.setattr("train.resilience.checkpoints.atomic_write_bytes", interrupted_write)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    args = [f"network={tiny_network}", f"data.dataset={digits_root}", "data.train_split=dev", "data.val_split=dev",
            "epochs=2", "batch_size=8", "augment.rotation=10"]
    result = train(load_train_config(overrides=[*args, "checkpoint.every_steps=1"]), QUIET)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert result.status == "preempted" and result.stop_signal == signal.SIGTERM and result.exit_status == 143
    assert writes == ["last.pt"] * 3  # steps 1 and 2 (a signal inside), and the stop after step 3
    last = result.run_dir / "checkpoints" / "last.pt"
    verify_sha256(last, required=True)
    position = read_checkpoint(last)["position"]
    assert (position["epoch"], position["step_in_epoch"]) == (0, 3)
    assert not list(last.parent.glob(".*.tmp"))
    monkeypatch.setattr("train.resilience.checkpoints.atomic_write_bytes", atomic_write_bytes)
    assert resume(str(result.run_dir), options=QUIET).status == "finished"
    assert_same_run(result.run_dir, straight_run(args, tmp_path / "straight", monkeypatch))


class CrashAfterFirstEpoch(Hook):
    """Stops a run after its first epoch as a crash would leave it."""

    name = "crash"

    def after_epoch(self, run, row):
        run.request_stop(RunStatus.CRASHED, "a crash, for the test")


@pytest.mark.slow
def test_auto_resume_continues_a_crashed_run_and_leaves_a_finished_one(tiny_network, digits_root, tmp_path,
                                                                        monkeypatch, capsys):
    args = [f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=2", "batch_size=32",
            "data.train_split=dev", "data.val_split=dev"]
    command = [*args, "--name", "nightly", "--auto-resume", "--device", "cpu", "--no-progress"]
    train_main = command_main("train")
    crashed = train(load_train_config(overrides=args),  # stops after epoch 1 as a crash would leave it
                    RunOptions(name="nightly", progress=False, device="cpu", hooks=(CrashAfterFirstEpoch(),)))
    assert crashed.status == "crashed" and crashed.epochs_completed == 1
    assert run_main(train_main, [*command, "optim.lr=0.5"]) == 2
    assert "--allow-change optim.lr" in capsys.readouterr().err
    assert run_main(train_main, command) == 0
    runs = list((Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").iterdir())
    assert runs == [crashed.run_dir]
    manifest = json.loads(crashed.run_dir.joinpath("manifest.json").read_text())
    assert manifest["status"] == "finished" and [r["epoch"] for r in manifest["resumed"]] == [1]
    capsys.readouterr()
    assert run_main(train_main, command) == 0  # finished: nothing to train
    assert "auto-resume: " in (out := capsys.readouterr().out) and "already ended (finished); nothing to train" in out
    assert list((Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").iterdir()) == [crashed.run_dir]
    assert_same_run(crashed.run_dir, straight_run(args, tmp_path / "straight", monkeypatch))

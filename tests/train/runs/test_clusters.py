"""Restarts by the launcher, on the CPU with two Gloo workers: a run that lost a worker must end with the
weights of an uninterrupted two-process run. (The Slurm recipes run on a real cluster: tests/cluster/.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.paths import PROJECT_ROOT
from networks.checkpoint import read_checkpoint
from tests.conftest import TINY_NETWORK
from tests.train.runs.test_preemption import saved_steps

STEPS_PER_EPOCH = 40  # 1257 training digits over 2 processes (629 each) in batches of 16
ENV = {"OMP_NUM_THREADS": "1"}


def train_args(network: Path, dataset: Path) -> list[str]:
    return [f"network={network}", f"data.dataset={dataset}", "epochs=2", "batch_size=16", "augment.rotation=10",
            "optim.label_smoothing=0.1", "--device", "cpu", "--no-progress"]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    assert [k for k in first if not torch.equal(first[k], second[k])] == []


@pytest.fixture(scope="module")
def setting(tmp_path_factory, digits_root) -> dict:
    """The tiny network, and an uninterrupted two-process run of the training both tests continue."""
    folder = tmp_path_factory.mktemp("clusters")
    network = folder / "tiny.yaml"
    network.write_text(TINY_NETWORK)
    args = train_args(network, digits_root)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train",
               *args]
    env = {**os.environ, **ENV, "IMAGEPIPE_OUTPUT": str(folder / "straight")}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (straight,) = (folder / "straight" / "train").iterdir()
    return {"args": args, "straight": straight}


def wait_for(process: subprocess.Popen, output: Path, step: int) -> Path:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        for log in (output / "train").glob("*/log.txt"):
            if saved_steps(log) and saved_steps(log)[-1] >= step:
                return log.parent
        time.sleep(0.01)
    raise AssertionError(f"the run ended or stalled before step {step} (exit {process.poll()})")


def worker_of_rank(parent: int, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank``."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().split(") ")[1].split()[1] == str(parent):
                if f"RANK={rank}\0".encode() in b"\0" + (entry / "environ").read_bytes():
                    return int(entry.name)
        except (OSError, IndexError):
            continue
    raise AssertionError(f"no worker of rank {rank} under pid {parent}")


@pytest.mark.slow
def test_torchrun_restarts_the_group_after_a_worker_is_killed_and_the_run_continues_exactly(setting, tmp_path):
    output = tmp_path / "elastic"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--max-restarts=1", "-m", "train", *setting["args"], "checkpoint.every_steps=5", "--name", "elastic",
               "--auto-resume"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **ENV, "IMAGEPIPE_OUTPUT": str(output)},
                               stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("w"))
    target = random.Random(20).randint(STEPS_PER_EPOCH + 10, STEPS_PER_EPOCH + 20)  # inside epoch 2
    run_dir = wait_for(process, output, target)
    os.kill(worker_of_rank(process.pid, 1), signal.SIGKILL)
    assert process.wait(timeout=600) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["world_size"] == 2 and manifest["result"]["ranks_in_sync"]
    (restart,) = manifest["resumed"]  # the group torchrun started again continued the run from last.pt
    assert restart["epoch"] == 1 and restart["step_in_epoch"] % 5 == 0 and restart["step_in_epoch"] >= target - 40
    assert [p.name for p in (output / "train").iterdir()] == [run_dir.name]
    assert_same_weights(run_dir, setting["straight"])

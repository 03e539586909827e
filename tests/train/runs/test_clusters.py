"""Restarts by the launcher and the Slurm recipe of docs/clusters.md, on the CPU with two Gloo workers.

Both continue a run that lost a worker, or was signalled, and must end with the weights of an
uninterrupted two-process run."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def slurm_script() -> str:
    """The Slurm batch script of docs/clusters.md, as written there."""
    doc = (PROJECT_ROOT / "docs" / "clusters.md").read_text()
    return re.search(r"## Slurm\n.*?```bash\n(.*?)```", doc, re.S).group(1)


FAKES = {  # Slurm's commands, as the script uses them
    "scontrol": '#!/bin/sh\nif [ "$1" = show ]; then echo localhost; else echo "$@" >> "$FAKE_LOG"; fi\n',
    "srun": '#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n',  # drop srun's options
    "pipenv": '#!/bin/sh\nshift\nexec "$@"\n',  # pipenv run X -> X
}


@pytest.mark.slow
def test_the_slurm_script_stops_on_its_signal_requeues_and_its_second_run_finishes(setting, tmp_path):
    script = slurm_script()
    assert "#SBATCH --requeue" in script and "#SBATCH --signal=B:USR1@120" in script and "--auto-resume" in script
    arguments = " ".join([*setting["args"], "checkpoint.every_steps=5", "--name", "nightly", "--auto-resume"])
    job = tmp_path / "job.sh"
    job.write_text(re.sub(r"^train=\(.*?\)$", f"train=({arguments})", script, count=1, flags=re.S | re.M))
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, text in FAKES.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    env = {**os.environ, **ENV, "PATH": f"{fakes}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node-a", "SLURM_JOB_NUM_NODES": "1",
           "SLURM_GPUS_ON_NODE": "2", "RDZV_PORT": str(free_port()), "FAKE_LOG": str(tmp_path / "slurm.log"),
           "IMAGEPIPE_OUTPUT": str(tmp_path / "output")}
    first = subprocess.Popen(["bash", str(job)], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=(tmp_path / "first.txt").open("w"))
    run_dir = wait_for(first, tmp_path / "output", random.Random(4242).randint(10, 30))
    first.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 does
    first.wait(timeout=600)
    assert (tmp_path / "slurm.log").read_text() == "requeue 4242\n"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "preempted" and manifest["result"]["signal"] == "SIGUSR1"
    assert 0 < manifest["result"]["position"]["step_in_epoch"] < STEPS_PER_EPOCH  # inside epoch 1
    second = subprocess.run(["bash", str(job)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=600)  # the requeued job: the same script
    assert second.returncode == 0, second.stderr[-3000:]
    assert (tmp_path / "slurm.log").read_text() == "requeue 4242\n"  # not requeued again
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1
    assert_same_weights(run_dir, setting["straight"])

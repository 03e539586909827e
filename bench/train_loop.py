"""Training-loop throughput: the stage's epoch against a bare loop, with the default logging, and under contention.

1. **The loop** (in this process, under the training's thread policy, as ``python -m train``
   runs it): the default network (``digits_cnn``) with AdamW at the default batch
   size on the bundled digits' training split, decoded once and held in memory,
   without augmentation (the bare loop has none). The stage's ``Trainer.train_epoch``
   runs once as the benchmark's bare trainer (nothing watched) and once watched as a
   run watches it by default (:class:`train.watch.Watch`: step-level curves and norms,
   phase timers, system figures, TensorBoard events, ``steps.csv``, ``metrics.csv`` and
   ``curves.png`` within the figure budget, in a temporary run folder; the budget keeps
   drawing under ``log.figure_budget`` (1%) of the time by construction, so a run as short
   as this one draws no figures). Rounds
   alternate between the three so that machine noise hits them alike; the table
   reports median samples/s and the ratios. Target: both at least 0.95 of the bare loop.
2. **Contention** (the thread policy, train/threads.py): the stage's epoch in a fresh
   process, alone and beside a competing process (a torch training loop with torch's
   default threads and OpenMP settings, in its own session, as a test run or another
   user's job would be), once with torch's defaults (before) and once with the
   policy (after). A run's fair share beside one other busy process is half of its
   speed alone; target: the policy keeps at least 0.8 of it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.digits import ensure_digits
from common.paths import PROJECT_ROOT
from common.provenance import now
from common.run_folder import RunFolder, RunManifest
from networks import build_network, load_network_config
from train.config import load_train_config
from train.data import load_training_data
from train.distributed import Processes
from train.observer import Observer
from train.recorder import RunRecorder
from train.threads import OPENMP_WAIT, USER_SETTINGS
from train.trainer import Trainer
from train.watch import Watch

TARGET = 0.95
"""Least ratio of the stage's loop (watched or not) to the bare loop."""

FAIR_TARGET = 0.8
"""Least share of its fair share (half its speed alone) a run keeps beside one busy process, with the policy."""

NO_AUGMENTATION = ["augment.rotation=0", "augment.translate=0", "augment.scale_min=1", "augment.scale_max=1"]

COMPETITOR = """
import torch
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3))
x = torch.randn(16, 3, 32, 32)
while True:
    net(x).sum().backward()
"""
"""A busy torch process with torch's default threads (what a test run or an evaluation looks like to the OS)."""


def main(rounds: int) -> int:
    """Measure and print; returns 0 when every target is met, 1 otherwise."""
    ensure_digits()
    loop_ok = measure_loop(rounds)
    fair_ok = measure_contention(max(2, (rounds + 1) // 2))
    return 0 if loop_ok and fair_ok else 1


def _trainer(overrides: list[str]) -> Trainer:
    config = load_train_config(overrides=NO_AUGMENTATION + overrides).config
    network_config = load_network_config(config.network)
    data = load_training_data(config, network_config, Processes())
    return Trainer(config, network_config, data, Processes(), torch.device("cpu"))


def _bare_epoch_function(trainer: Trainer) -> Any:
    config, network_config = trainer.config, trainer.network_config
    images, labels = trainer.data.train.images, trainer.data.train.labels
    torch.manual_seed(config.seed)
    network = build_network(network_config)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)

    def bare_epoch(epoch: int) -> float:
        network.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        started = time.perf_counter()
        for batch in torch.split(order, config.batch_size):
            loss = F.cross_entropy(network(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return len(labels) / (time.perf_counter() - started)

    return bare_epoch


def measure_loop(rounds: int) -> bool:
    """The stage's loop, unwatched and watched, against the bare loop; prints the table, True when on target."""
    trainer = _trainer([])
    bare_epoch = _bare_epoch_function(trainer)
    samples = len(trainer.data.train)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        recorder = RunRecorder(RunFolder.create("bench", Path(folder)), is_main=True)
        recorder.start(trainer.config, trainer.network_config,
                       RunManifest(run="bench", status="running", started=now()))
        watch, plain = Watch(trainer, recorder, 0, trainer.data.train.source), Observer()

        def stage_epoch(epoch: int, watched: bool) -> float:
            trainer.epoch, trainer.observer = epoch, watch if watched else plain  # the epoch seeds the shuffle
            started = time.perf_counter()
            row = trainer.train_epoch()
            if watched:  # what a run does between epochs for its logging (no validation: the bare loop has none)
                row = {"epoch": trainer.epoch, "step": trainer.step, **row, **watch.epoch_end(row)}
                recorder.record_epoch(row)
                watch.after_epoch(row, final=False)
            return samples / (time.perf_counter() - started)

        bare_epoch(-1), stage_epoch(0, False), stage_epoch(0, True)  # warm-up, not measured
        bare, stage, watched = [], [], []
        for r in range(rounds):
            bare.append(bare_epoch(r))
            stage.append(stage_epoch(r + 1, False))
            watched.append(stage_epoch(r + 1, True))
        recorder.finish("finished", {})
        recorder.close()
    medians = [statistics.median(values) for values in (bare, stage, watched)]
    print(f"training loop on {samples} digits, {trainer.network_config.name}, AdamW, batch {trainer.config.batch_size}, "
          f"{torch.get_num_threads()} threads, {rounds} alternating rounds (median samples/s)")
    print(f"  bare hand-written loop           {medians[0]:9.0f}")
    print(f"  train stage loop                 {medians[1]:9.0f}   ratio {medians[1] / medians[0]:.3f}")
    print(f"  train stage loop, logging on     {medians[2]:9.0f}   ratio {medians[2] / medians[0]:.3f}"
          f"   (both: target >= {TARGET})")
    return min(medians[1:]) / medians[0] >= TARGET


def worker(spec_json: str) -> None:
    """Run in a fresh process: train epochs of the stage for ``seconds`` and print ``{"samples_per_second": ...}``."""
    spec = json.loads(spec_json)
    trainer = _trainer([])
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    trainer.train_epoch()  # warm-up
    seen, started = 0, time.perf_counter()
    while time.perf_counter() - started < spec["seconds"]:
        trainer.train_epoch()
        seen += len(trainer.data.train)
    print(json.dumps({"samples_per_second": seen / (time.perf_counter() - started)}))


def _run_worker(policy: bool, beside: bool, seconds: float) -> float:
    environment = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    if policy:
        environment.update(OPENMP_WAIT)
    competitor = None
    if beside:
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], start_new_session=True, cwd=PROJECT_ROOT,
                                      env={k: v for k, v in os.environ.items() if k not in USER_SETTINGS},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spec = json.dumps({"threads": 0, "seconds": seconds})
        done = subprocess.run([sys.executable, "-c", "import sys, bench.train_loop as b; b.worker(sys.argv[1])", spec],
                              cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, check=True,
                              timeout=600)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])["samples_per_second"]


def measure_contention(rounds: int, seconds: float = 3.0) -> bool:
    """Alone and beside a busy process, torch's defaults against the thread policy; prints the table."""
    cells = {(policy, beside): [] for policy in (False, True) for beside in (False, True)}
    for _ in range(rounds):
        for key in cells:
            cells[key].append(_run_worker(*key, seconds=seconds))
    median = {key: statistics.median(values) for key, values in cells.items()}
    print(f"contention: the stage's epoch in a fresh process, alone and beside a busy torch process (its own "
          f"session, torch's default threads), {os.cpu_count()} cores, {rounds} rounds (median samples/s)")
    print(f"  {'':28}{'alone':>9}{'beside':>9}{'beside/alone':>14}{'of fair share':>15}")
    fair = {}
    for policy, label in ((False, "torch defaults (before)"), (True, "thread policy (after)")):
        alone, beside = median[(policy, False)], median[(policy, True)]
        fair[policy] = beside / (alone / 2)
        print(f"  {label:<28}{alone:9.0f}{beside:9.0f}{beside / alone:14.2f}{fair[policy]:15.2f}")
    print(f"  the policy alone against torch's defaults alone: {median[(True, False)] / median[(False, False)]:.3f}; "
          f"fair share kept with the policy: {fair[True]:.2f} (target >= {FAIR_TARGET})")
    return fair[True] >= FAIR_TARGET

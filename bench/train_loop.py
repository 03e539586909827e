"""Training-loop throughput: the stage's epoch against a bare loop, with the default logging, with augmentation, and
under contention.

1. **The loop** (in this process, under the training's thread policy, as ``python -m train``
   runs it): the default network (``digits_cnn``) with AdamW at the default batch
   size on the bundled digits' training split, decoded once and held in memory,
   without augmentation (the bare loop has none). The stage's ``Trainer.train_epoch``
   runs once as the benchmark's bare trainer (nothing watched, no hooks) and once watched
   as a run watches it by default: the watching hooks of :func:`train.run.build_hooks`
   (:data:`WATCHING`: step-level curves and norms, phase timers, system figures,
   TensorBoard events, ``steps.csv``, ``metrics.csv`` and ``curves.png`` within the figure
   budget), driven by the run loop's own epoch (:meth:`train.loop.run_loop.RunLoop.train_epoch`,
   with its per-step exchange of stop requests) in a temporary run folder; the budget
   keeps drawing under ``log.figure_budget`` (1%) of the time by construction, so a run
   as short as this one draws no figures. Rounds
   alternate between the three so that machine noise hits them alike; the table
   reports median samples/s and the ratios. Target: both at least 0.95 of the bare loop.
2. **Augmentation off the critical path**: the stage trains with the photo recipe's
   augmentation (``train/configs/photos.yaml``: flips, shifts, zoom, brightness and
   contrast), prepared for the next batch in a thread while the current one trains,
   against the bare loop *without* augmentation; timm's ResNet-18 at 64x64 on generated
   photos (:data:`PHOTOS` images in memory), AdamW, batch 32. Target: at least 0.95.
3. **Contention** (the thread policy, train/process/threads.py): the stage's epoch in a fresh
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.data import contract
from common.digits import ensure_digits
from common.lists import Dataset, load_dataset
from common.paths import PROJECT_ROOT
from common.provenance import now
from common.run_folder import RunFolder, RunManifest, RunStatus
from networks import build_network, load_network_config
from networks.config import ArchConfig, NetworkConfig
from train.config import load_train_config
from train.data.loading import TrainingData, load_split, load_training_data
from train.loop.hooks import Hooks
from train.loop.phase_timer import PhaseTimer
from train.loop.run_loop import RunLoop
from train.loop.trainer import Trainer
from train.process.distributed import Processes
from train.process.threads import OPENMP_WAIT, USER_SETTINGS
from train.resilience.preemption import StopSignals
from train.run import RunOptions, build_hooks
from train.watch.console import RunStart
from train.watch.recorder import RunRecorder
from train.watch.steps import points_every

TARGET = 0.95
"""Least ratio of the stage's loop (watched or not) to the bare loop."""

WATCHING = ("trackers", "record", "step_log", "system_figures", "time_breakdown", "metrics", "validation_watch")
"""The hooks of a run that watch it (the others keep checkpoints and say what happens)."""

PHOTOS = 1280
"""Generated photos of the augmentation case (40 batches of 32)."""

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
    augment_ok = augmentation_loop(rounds)
    fair_ok = measure_contention(max(2, (rounds + 1) // 2))
    return 0 if loop_ok and augment_ok and fair_ok else 1


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
    plain = trainer.timer
    timer = PhaseTimer(True, None, points_every(trainer.config, trainer.steps_per_epoch))
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        trainer.timer = timer
        recorder = RunRecorder(RunFolder.create("bench", Path(folder)), is_main=True)
        manifest = RunManifest(run="bench", status=RunStatus.RUNNING, started=now())
        hooks = build_hooks(trainer, recorder, RunOptions(progress=False),
                            lambda: recorder.start(trainer.config, trainer.network_config, manifest),
                            RunStart("run"), StopSignals(()))
        loop = RunLoop(trainer, Hooks(hook for hook in hooks.hooks if hook.name in WATCHING))
        loop.hooks.before_run(loop.run)

        def stage_epoch(epoch: int, watched: bool) -> float:
            trainer.epoch, trainer.timer = epoch, timer if watched else plain  # the epoch seeds the shuffle
            started = time.perf_counter()
            if watched:  # the run loop's epoch, then what a run does for its logging (no validation: the bare loop
                loop.train_epoch()  # has none)
                loop.run.start_row({"epoch": trainer.epoch, "step": trainer.step, **loop.epoch_row})
                loop.hooks.after_validation(loop.run)
                loop.hooks.after_epoch(loop.run, loop.run.take_row())
            else:
                trainer.train_epoch()
            return samples / (time.perf_counter() - started)

        bare_epoch(-1), stage_epoch(0, False), stage_epoch(0, True)  # warm-up, not measured
        bare, stage, watched = [], [], []
        for r in range(rounds):
            bare.append(bare_epoch(r))
            stage.append(stage_epoch(r + 1, False))
            watched.append(stage_epoch(r + 1, True))
        loop.run.clean = True
        loop.hooks.after_run(loop.run, RunStatus.FINISHED)
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


def augmentation_loop(rounds: int) -> bool:
    """The stage with the photo recipe's augmentation against a bare loop without any."""
    with tempfile.TemporaryDirectory() as folder:
        dataset = photo_dataset(Path(folder), PHOTOS)
        network_config = NetworkConfig(name="bench", arch=ArchConfig("timm", {"model": "resnet18"}),
                                       num_classes=len(dataset.class_names), input=contract(64))
        split = load_split(dataset, "train", network_config.input, pack="off")
    config = load_train_config(PROJECT_ROOT / "train" / "configs" / "photos.yaml",
                               ["network=bench", "data.dataset=bench", "batch_size=32", "epochs=100",
                                "schedule.name=constant", "schedule.warmup_epochs=0"]).config
    trainer = Trainer(config, network_config, TrainingData(dataset, split, split), Processes(), torch.device("cpu"))
    assert trainer.augment.enabled
    torch.manual_seed(0)
    bare = build_network(network_config).train()
    optimizer = torch.optim.AdamW(bare.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    images, labels = split.images, split.labels

    def bare_epoch(epoch: int) -> None:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch + 1))
        for batch in torch.split(order, config.batch_size):
            loss = F.cross_entropy(bare(images[batch]), labels[batch], label_smoothing=config.optim.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    bare_rate, stage_rate = alternate(bare_epoch, stage_run(trainer), len(labels), rounds)
    print(f"\ntraining loop, timm resnet18 at 64x64, {len(labels):,} generated photos, batch {config.batch_size}, "
          f"{torch.get_num_threads()} threads, {rounds} alternating rounds (median samples/s)")
    return report("bare loop, no augmentation", bare_rate, "stage, photos.yaml augmentation", stage_rate)


def stage_run(trainer: Trainer) -> Callable[[int], None]:
    """One epoch of the stage's loop; the epoch number seeds the shuffle and the augmentation."""
    def run(epoch: int) -> None:
        trainer.epoch = max(epoch, 0)
        trainer.train_epoch()

    return run


def alternate(bare: Callable[[int], None], stage: Callable[[int], None], samples: int, rounds: int
              ) -> tuple[float, float]:
    """Median samples/s of each, one warm-up epoch each, then rounds alternating between them."""
    bare(-1), stage(0)  # warm-up, not measured
    rates: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for rate, run, epoch in ((rates[0], bare, r), (rates[1], stage, r + 1)):
            started = time.perf_counter()
            run(epoch)
            rate.append(samples / (time.perf_counter() - started))
    return statistics.median(rates[0]), statistics.median(rates[1])


def report(bare_name: str, bare: float, stage_name: str, stage: float) -> bool:
    """Print both rates and their ratio; True when the target is met."""
    ratio = stage / bare
    print(f"  {bare_name:32} {bare:9.0f}")
    print(f"  {stage_name:32} {stage:9.0f}")
    print(f"  {'ratio stage / bare':32} {ratio:9.3f}   (target >= {TARGET})")
    return ratio >= TARGET


def photo_dataset(root: Path, count: int, size: int = 72, classes: int = 10) -> Dataset:
    """A data set of ``count`` generated photos (PNG, ``size`` x ``size``, crops of scikit-learn's sample
    photos with a colour shift per class) with one ``train`` list."""
    from bench.export import photo_crops

    (root / "lists").mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"shift{c}\n" for c in range(classes)))
    shifts = np.random.default_rng(1).uniform(0.6, 1.4, size=(classes, 3))
    lines = []
    for index, crop in enumerate(photo_crops(count, size, seed=3)):
        pixels = np.clip(crop.transpose(1, 2, 0) * shifts[index % classes], 0, 255)  # (C, H, W) -> (H, W, C)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"{index:05d}.png")
        lines.append(f"{index:05d}.png {index % classes}\n")
    (root / "lists" / "train.txt").write_text("".join(lines))
    return load_dataset(root)

"""Input paths on realistic data: decoding, streaming, packs, memory, and the training loop.

The data set is generated once and cached in ``data/bench_photos/``: 20,000 JPEG
patches of 256x256 cut from scikit-learn's two bundled sample photos (random crops,
flips, and a colour shift per class; 10 classes), with train (16,000), val, test
(2,000 each) and dev (200) lists; it is packed at 64x64 and 224x224 once. Every
figure is measured in this run, contenders alternating, and printed as a ratio:

1. streaming: images/s decoding 2,000 training images to 64x64 with ``WORKERS``
   processes, a bare PIL decode + resize loop in a process pool against the stage's
   streaming path (persistent DataLoader workers); target at least 0.9.
2. packs: the training loop (small CNN at 64x64, 2,000 images) reading batches
   from the pack against the same images held in memory; target at least 0.95.
3. start-up: decoding the training split into memory (what every run did before
   packs) against loading it from its pack, and opening the pack for batch reads;
   target at least 10x sooner.
4. memory: peak resident memory of a process that reads every batch of the 224x224
   training pack (about 2.4 GB) against ``MEMORY_LIMIT``.
5. the training loop: ``Trainer.train_epoch`` against a bare hand-written loop, same
   timm ResNet-18, AdamW, batch, uint8 data in memory, at 64x64 (2,000 images) and
   224x224 (the 200 dev images); target at least 0.95.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.export import photo_crops
from common.contract import InputContract
from common.lists import Dataset, PrepareRecord, load_dataset, read_prepare_record, read_split, write_prepare_record
from common.paths import PROJECT_ROOT, data_dir
from common.staging import staged
from networks import build_network
from networks.config import ArchConfig, NetworkConfig
from train.config import load_train_config
from train.data.loading import TrainingData, iterate_batches, load_split
from train.process.distributed import Processes
from train.data.packs import open_pack_split, write_pack
from train.loop.trainer import Trainer

IMAGES = 20_000
CLASSES = 10
WORKERS = 2
MEMORY_LIMIT = 1 << 30
"""Bytes: the 224x224 training pack (about 2.4 GB) is larger; reading it must stay well under this."""
SET_VERSION = 1


def main(rounds: int) -> int:
    """Generate the set if needed, measure, print; 0 when every target is met."""
    dataset = photo_set()
    small, large = contract(64), contract(224)
    for size in (small, large):
        if isinstance(open_pack_split(dataset, "train", size, "error"), str):
            print(f"packing {dataset.root.name} at {size.height}x{size.width} (once) ...", flush=True)
            write_pack(dataset, size, ["train", "val", "dev"])
    ok = _streaming(dataset, small, max(2, rounds // 2))
    ok &= _pack_loop(dataset, small, 2000, max(2, rounds // 3))
    ok &= _startup(dataset, small)
    ok &= _memory(dataset, large)
    ok &= _loop(dataset, small, "train", 2000, max(3, rounds // 2))
    ok &= _loop(dataset, large, "dev", 200, 2)
    return 0 if ok else 1


def contract(size: int) -> InputContract:
    """An RGB contract at ``size`` x ``size`` (bilinear, ImageNet statistics)."""
    return InputContract("RGB", size, size, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def photo_set() -> Dataset:
    """The cached photo set, generated on first use (about a minute)."""
    root = data_dir() / "bench_photos"
    marker = {"bench_set_version": SET_VERSION, "images": IMAGES}
    record = read_prepare_record(root) if root.is_dir() else None
    if record is not None and record.details == marker:
        return load_dataset(root)
    print(f"generating {IMAGES:,} JPEGs in {root} (once) ...", flush=True)
    with staged(root, exists="replace") as stage:
        (stage.path / "lists").mkdir()
        (stage.path / "classes.txt").write_text("".join(f"shift{c}\n" for c in range(CLASSES)))
        shifts = np.random.default_rng(1).uniform(0.6, 1.4, size=(CLASSES, 3))
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(lambda i: _write_photo(stage.path, i, shifts), range(IMAGES)))
        lines = [f"raw/{i % CLASSES}/{i:05d}.jpg {i % CLASSES}\n" for i in range(IMAGES)]
        splits = {"train": lines[:16000], "val": lines[16000:18000], "test": lines[18000:], "dev": lines[:200]}
        for name, members in splits.items():
            (stage.path / "lists" / f"{name}.txt").write_text("".join(members))
        write_prepare_record(stage.path, PrepareRecord(source="bench: generated JPEG photos", seed=1,
                                                       details=marker))
    return load_dataset(root)


def _write_photo(root: Path, index: int, shifts: np.ndarray) -> None:
    crop = photo_crops(1, 256, seed=index)[0].transpose(1, 2, 0).astype(np.float32)  # (3, H, W) -> (H, W, 3)
    shifted = np.clip(crop * shifts[index % CLASSES], 0, 255).astype(np.uint8)
    path = root / "raw" / str(index % CLASSES) / f"{index:05d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(shifted).save(path, quality=90)


def _decode(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))


def _rate(run, count: int) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def _streaming(dataset: Dataset, size: InputContract, rounds: int) -> bool:
    paths = [str(dataset.image_path(s)) for s in read_split(dataset, "train")[:2000]]
    streamed = load_split(dataset, "train", size, in_memory=False, pack="off")
    streamed.samples, streamed.labels = streamed.samples[:2000], streamed.labels[:2000]
    with Pool(WORKERS) as pool:
        runs = {"bare decode": lambda: list(pool.imap(_decode, paths, chunksize=64)),
                "stage streaming": lambda: list(iterate_batches(streamed, torch.arange(2000), 64, WORKERS, False))}
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():
            run()  # warm-up: page cache, worker start
        for _ in range(rounds):
            for name, run in runs.items():
                rates[name].append(_rate(run, len(paths)))
    bare, stage = statistics.median(rates["bare decode"]), statistics.median(rates["stage streaming"])
    print(f"\ndecoding {len(paths):,} JPEGs to 64x64 with {WORKERS} processes, {rounds} rounds (images/s)")
    print(f"  bare PIL loop {bare:9,.0f}   stage streaming {stage:9,.0f}   ratio {stage / bare:.3f}   "
          "(target >= 0.9)")
    return stage / bare >= 0.9


def _startup(dataset: Dataset, size: InputContract) -> bool:
    timings = {}
    for name, kwargs in (("decode into memory", {"in_memory": True, "pack": "off"}),
                         ("pack into memory", {"in_memory": True, "pack": "require"}),
                         ("pack, read per batch", {"in_memory": False, "pack": "require"})):
        started = time.perf_counter()
        load_split(dataset, "train", size, **kwargs)
        timings[name] = time.perf_counter() - started
    ratio = timings["decode into memory"] / timings["pack into memory"]
    print(f"\nstart-up on {len(read_split(dataset, 'train')):,} training images at 64x64 (seconds)")
    for name, value in timings.items():
        print(f"  {name:22} {value:8.2f}")
    print(f"  decode / pack into memory  {ratio:7.1f}x   (target >= 10x)")
    return ratio >= 10


def _memory(dataset: Dataset, size: InputContract) -> bool:
    packed = open_pack_split(dataset, "train", size, "error")
    code = f"from bench.data import peak_memory_reading; print(peak_memory_reading({str(dataset.root)!r}, {size.height}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            check=True)
    peak = int(result.stdout.split()[-1])
    pack_bytes = packed.images_path.stat().st_size
    print(f"\nmemory reading every batch of the {size.height}x{size.width} training pack per batch")
    print(f"  pack {pack_bytes / 2**30:.2f} GiB, limit {MEMORY_LIMIT / 2**30:.2f} GiB, peak resident "
          f"{peak / 2**30:.2f} GiB (the whole process, torch included)")
    return peak < MEMORY_LIMIT < pack_bytes


def peak_memory_reading(root: str, size: int) -> int:
    """Read every batch of a pack per batch, in a shuffled order; the process's peak resident bytes.

    The peak is ``VmHWM`` of ``/proc/self/status``: ``getrusage``'s ``ru_maxrss``
    keeps the high-water mark of the process that started this one.
    """
    from train.data.loading import epoch_order

    data = load_split(load_dataset(Path(root)), "train", contract(size), in_memory=False, pack="require")
    for _ in iterate_batches(data, epoch_order(len(data), 0, 0, True), 64, 0, False):
        pass
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def _subset(dataset: Dataset, split: str, size: InputContract, count: int, in_memory: bool) -> TrainingData:
    data = load_split(dataset, split, size, in_memory=in_memory, pack="require")
    data.samples, data.labels = data.samples[:count], data.labels[:count]
    if data.images is not None:
        data.images = data.images[:count]
    return TrainingData(dataset, data, data)


def _trainer(network_config: NetworkConfig, data: TrainingData) -> Trainer:
    config = load_train_config(None, ["batch_size=32", "epochs=100", "schedule.name=constant"]).config
    return Trainer(config, network_config, data, Processes(), torch.device("cpu"))


def _epochs(contenders: dict[str, Any], count: int, rounds: int) -> dict[str, float]:
    """Median samples/s of each contender, a function of the epoch number, alternating."""
    for run in contenders.values():
        run(-1)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, run in contenders.items():
            rates[name].append(_rate(lambda: run(r), count))
    return {name: statistics.median(values) for name, values in rates.items()}


def _stage_epoch(trainer: Trainer) -> Any:
    def run(epoch: int) -> None:
        trainer.epoch = max(epoch, 0)  # the epoch seeds the shuffle
        trainer.train_epoch()

    return run


def _pack_loop(dataset: Dataset, size: InputContract, count: int, rounds: int) -> bool:
    network_config = NetworkConfig(name="bench_cnn", arch=ArchConfig("small_cnn", {}), num_classes=CLASSES, input=size)
    contenders = {"in memory": _stage_epoch(_trainer(network_config, _subset(dataset, "train", size, count, True))),
                  "pack per batch": _stage_epoch(_trainer(network_config,
                                                          _subset(dataset, "train", size, count, False)))}
    rates = _epochs(contenders, count, rounds)
    ratio = rates["pack per batch"] / rates["in memory"]
    print(f"\ntraining loop, small CNN at 64x64, {count:,} images, {rounds} rounds (samples/s)")
    print(f"  in memory {rates['in memory']:9.1f}   pack per batch {rates['pack per batch']:9.1f}   "
          f"ratio {ratio:.3f}   (target >= 0.95)")
    return ratio >= 0.95


def _loop(dataset: Dataset, size: InputContract, split: str, count: int, rounds: int) -> bool:
    network_config = NetworkConfig(name="bench", arch=ArchConfig("timm", {"model": "resnet18"}), num_classes=CLASSES,
                                   input=size)
    trainer = _trainer(network_config, _subset(dataset, split, size, count, True))
    torch.manual_seed(0)
    bare = build_network(network_config).train()
    optimizer = torch.optim.AdamW(bare.parameters(), lr=trainer.config.optim.lr,
                                  weight_decay=trainer.config.optim.weight_decay)
    images, labels = trainer.data.train.images, trainer.data.train.labels

    def bare_epoch(epoch: int) -> None:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch + 1))
        for batch in torch.split(order, trainer.config.batch_size):
            loss = F.cross_entropy(bare(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    rates = _epochs({"bare": bare_epoch, "stage": _stage_epoch(trainer)}, len(labels), rounds)
    ratio = rates["stage"] / rates["bare"]
    print(f"\ntraining loop, timm resnet18 at {size.height}x{size.width}, {len(labels):,} images, batch "
          f"{trainer.config.batch_size}, {torch.get_num_threads()} threads, {rounds} rounds (samples/s)")
    print(f"  bare loop {rates['bare']:9.1f}   stage {rates['stage']:9.1f}   ratio {ratio:.3f}   (target >= 0.95)")
    return ratio >= 0.95

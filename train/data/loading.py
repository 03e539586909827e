"""Training data: list files -> uint8 image batches, in memory or decoded per batch.

Images go through :func:`common.images.load_image`, the same deterministic
preprocessing evaluation uses, under the shared unreadable-image policy
(:func:`common.images.handle_unreadable`); augmentation (train/loop/augment.py) is
applied later, to training batches only.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import numpy as np
import torch

from common.contract import InputContract
from common.digits import open_dataset_or_digits
from common.errors import UserError
from common.images import UnreadableImageError, handle_unreadable, load_image, load_samples
from common.lists import Dataset, Sample, read_split
from common.paths import display_path
from networks.config import NetworkConfig
from train.config import TrainConfig
from train.process.distributed import Processes, barrier
from train.data.packs import PackSplit, open_pack_split

Batch = tuple[torch.Tensor, torch.Tensor]
"""``(images uint8 (B, C, H, W), labels int64 (B,))``."""

JOIN_TIMEOUT = 60.0
"""Seconds :func:`prefetched` waits for its thread to finish the item in hand when the consumer stops."""

WORKER_EXIT_GRACE = 10.0
"""Seconds a decoding worker keeps serving after a SIGTERM (the training process may still need a batch)."""


@dataclass
class SplitData:
    """One split, ready to batch.

    Attributes:
        name: Split name.
        list_path: Its list file.
        dataset: The data set.
        samples: The samples (when held in memory or packed: the ones that decoded).
        labels: ``int64`` labels ``(N,)``.
        images: ``uint8`` images ``(N, C, H, W)`` when held in memory (on the CPU or
            the GPU), else None.
        contract: The input contract images are decoded with.
        on_unreadable: The unreadable-image policy (``error`` or ``skip``).
        unreadable: ``<list file>:<line>`` of each image left out as unreadable (when
            streaming: found so far, each reported once).
        pack: The packed split read per batch, when not in memory.
        source: Where the images come from, for the log.
        notes: Why a pack was not used, for the log.
    """

    name: str
    list_path: Path
    dataset: Dataset
    samples: list[Sample]
    labels: torch.Tensor
    images: torch.Tensor | None
    contract: InputContract
    on_unreadable: str = "error"
    unreadable: list[str] = field(default_factory=list)
    pack: PackSplit | None = None
    source: str = "decoded once, in memory"
    notes: list[str] = field(default_factory=list)
    loader: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class TrainingData:
    """What a run trains and validates on.

    Attributes:
        dataset: The data set.
        train: The training split.
        val: The validation split.
    """

    dataset: Dataset
    train: SplitData
    val: SplitData

    def close(self) -> None:
        """Let go of the splits' resources: decoding worker processes and open pack files."""
        for split in (self.train, self.val):
            split.loader = None  # a persistent DataLoader's workers end with it
            if split.pack is not None:
                split.pack.close()


def load_training_data(config: TrainConfig, network_config: NetworkConfig, processes: Processes) -> TrainingData:
    """Open the config's data set (rank 0 first: it may prepare the bundled digits) and load both splits.

    Raises:
        UserError: For a missing or invalid data set, a class count that differs from
            the network's, a missing pack under ``data.pack=require``, or a list-file or
            image problem.
    """
    if processes.is_main:
        dataset = open_dataset_or_digits(config.data.dataset)
    barrier(processes)
    if not processes.is_main:
        dataset = open_dataset_or_digits(config.data.dataset)
    check_classes(dataset, network_config.num_classes, network_config.name)
    data, contract = config.data, network_config.input
    return TrainingData(
        dataset=dataset,
        train=load_split(dataset, data.train_split, contract, data.on_unreadable, data.in_memory, data.pack),
        val=load_split(dataset, data.val_split, contract, data.on_unreadable, data.in_memory, data.pack),
    )


def load_split(dataset: Dataset, split: str, contract: InputContract, on_unreadable: str = "error",
               in_memory: bool = True, pack: str = "off") -> SplitData:
    """Read a split's list file; take its images from a matching pack, or decode them.

    Args:
        dataset: The data set.
        split: The split's name.
        contract: The input contract.
        on_unreadable: ``error`` or ``skip``.
        in_memory: Hold the images in memory (decoded once, or loaded from the pack).
        pack: ``auto``, ``require`` or ``off`` (see ``train.config.DataConfig``).

    Raises:
        UserError: For list-file or image problems, or no usable pack under ``require``.
    """
    samples = read_split(dataset, split)
    found = open_pack_split(dataset, split, contract, on_unreadable) if pack != "off" else None
    if isinstance(found, PackSplit):
        return _from_pack(dataset, split, samples, contract, on_unreadable, found, in_memory)
    if pack == "require":
        raise UserError(f"data.pack=require: {found}")
    notes = [f"pack not used for {split}: {found}"] if found and (dataset.root / "packs").is_dir() else []
    labels = torch.as_tensor(np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples)))
    if not in_memory:
        return SplitData(split, dataset.list_path(split), dataset, samples, labels, None, contract, on_unreadable,
                         source="decoded per batch", notes=notes)
    array, labels_array, kept = load_samples(dataset, samples, contract, on_unreadable=on_unreadable)
    unreadable = [f"{s.source}:{s.line}" for s in sorted(set(samples) - set(kept), key=lambda s: s.line)]
    return SplitData(split, dataset.list_path(split), dataset, kept, torch.as_tensor(labels_array),
                     torch.from_numpy(array), contract, on_unreadable, unreadable, notes=notes)


def _from_pack(dataset: Dataset, split: str, samples: list[Sample], contract: InputContract, on_unreadable: str,
               pack: PackSplit, in_memory: bool) -> SplitData:
    by_path = {s.path: s for s in samples}
    kept = [by_path[path] for path in pack.paths]
    where = display_path(pack.images_path.parent)
    images = torch.from_numpy(pack.load()) if in_memory else None
    return SplitData(split, dataset.list_path(split), dataset, kept, torch.from_numpy(pack.labels), images, contract,
                     on_unreadable, list(pack.unreadable), pack=None if in_memory else pack,
                     source=f"pack {where}, {'in memory' if in_memory else 'read per batch'}")


def epoch_order(size: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The sample order of one epoch for one process.

    Shuffling is seeded by ``(seed, epoch)`` alone, so it is the same after a resume.
    Under several processes the order is padded (by repeating it from the start, as
    often as needed) to a multiple of ``world_size`` and dealt out, ``rank`` taking
    every ``world_size``-th, so every process gets the same number of samples.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(size, generator=generator)
    else:
        order = torch.arange(size)
    if world_size > 1:
        padded = -(-size // world_size) * world_size
        order = order.repeat(-(-padded // size))[:padded][rank::world_size]  # every rank gets as many samples
    return order


def iterate_batches(data: SplitData, order: torch.Tensor, batch_size: int, num_workers: int,
                    drop_singleton: bool, pin: bool = False, start: int = 0) -> Iterator[Batch]:
    """Yield ``(images uint8 (B, C, H, W), labels int64 (B,))`` in ``order``.

    In-memory splits are indexed where they live (the CPU or the GPU); a pack read
    per batch is read one batch ahead in a thread; images decoded per batch come
    from ``num_workers`` persistent worker processes.

    Args:
        data: The split.
        order: Sample indices, in order.
        batch_size: Samples per batch; the last batch may be smaller (and a batch
            streamed from disk loses the images skipped as unreadable).
        num_workers: Decoding processes when the split is decoded per batch.
        drop_singleton: Drop a last batch of one sample (batch norm cannot train on it).
        pin: Put CPU batches in page-locked memory (for asynchronous copies to a GPU).
        start: Skip the first ``start`` batches (a run resumed inside an epoch).

    Raises:
        UnreadableImageError: For an unreadable image under the ``error`` policy, or a
            batch of which no image could be decoded.
    """
    chunks = list(torch.split(order, batch_size))
    if drop_singleton and chunks and len(chunks[-1]) == 1 and len(chunks) > 1:
        chunks.pop()
    chunks = chunks[start:]
    if data.images is not None:
        on_device = [c.to(data.images.device) for c in chunks]
        batches: Iterator[Batch] = ((data.images.index_select(0, c), data.labels.index_select(0, c))
                                    for c in on_device)
    elif data.pack is not None:
        batches = prefetched((torch.from_numpy(data.pack.read(c.numpy())), data.labels.index_select(0, c))
                             for c in chunks)
    else:
        batches = _decoded(data, chunks, num_workers)
    for images, labels in batches:
        if pin and not images.is_cuda:
            images, labels = images.pin_memory(), labels.pin_memory()
        yield images, labels


def _decoded(data: SplitData, chunks: list[torch.Tensor], num_workers: int) -> Iterator[Batch]:
    if data.loader is None:  # made once: its worker processes last for the whole run
        data.loader = torch.utils.data.DataLoader(
            _StreamedImages(data), batch_sampler=_Batches(), num_workers=num_workers, collate_fn=_collate,
            persistent_workers=num_workers > 0, worker_init_fn=_leave_signals_to_training,
            generator=torch.Generator().manual_seed(0),  # its own: drawing from the global one would shift dropout
        )
    data.loader.batch_sampler.chunks = [c.tolist() for c in chunks]
    for images, indices, failures in data.loader:
        for index, reason in failures:
            sample = data.samples[index]
            if f"{sample.source}:{sample.line}" not in data.unreadable:
                handle_unreadable(sample, reason, data.on_unreadable)
                data.unreadable.append(f"{sample.source}:{sample.line}")
        if len(indices) == 0:
            raise UnreadableImageError(f"{display_path(data.list_path)}: no image of a whole batch could be decoded")
        yield images, data.labels.index_select(0, indices)


def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """The items of an iterator, produced ``depth`` ahead in a background thread.

    Reading the next batch (file reads release the GIL) overlaps with computing on
    the current one. An exception in the thread is raised here. When the consumer
    stops early, the thread finishes the item in hand and ends before this returns, so
    nothing it reads from (a DataLoader's worker processes) outlives the consumer.
    """
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        """Hand an entry over unless the consumer stopped; False when it did."""
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # handed to the consumer
            put((end, exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()  # the thread ends at its next hand-over (no thread is left waiting on a full queue)
        thread.join(timeout=JOIN_TIMEOUT)  # and lets go of what it reads from (a DataLoader's workers)


def steps_per_epoch(size: int, batch_size: int, world_size: int) -> int:
    """Optimiser steps in one training epoch (matching :func:`iterate_batches`)."""
    per_rank = -(-size // world_size)
    steps, last = divmod(per_rank, batch_size)
    return steps + (1 if last > 1 or (last == 1 and steps == 0) else 0)


def _leave_signals_to_training(worker_id: int) -> None:
    """In a decoding worker: leave the signals that stop training to the training process.

    Ctrl-C reaches the whole process group and a scheduler may signal every process of
    a job; a worker killed by it could fail the batch the training process still needs
    before it stops. So SIGINT, SIGUSR1, SIGUSR2 and SIGHUP are ignored, and SIGTERM
    ends the worker only :data:`WORKER_EXIT_GRACE` seconds later (it is also how
    ``multiprocessing`` stops a worker that was not shut down). A worker whose training
    process is gone ends on its own (the DataLoader's watchdog).
    """
    for name in ("SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_soon)


def _exit_soon(signum: int, frame: Any) -> None:
    timer = threading.Timer(WORKER_EXIT_GRACE, os._exit, (128 + signum,))
    timer.daemon = True
    timer.start()


class _Batches:
    """The batches of the current epoch, set before each pass (a persistent loader's batch sampler)."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class _StreamedImages(torch.utils.data.Dataset):
    """Decodes one sample per item; an unreadable one comes back as its failure, not an exception."""

    def __init__(self, data: SplitData):
        self.samples, self.root, self.contract = data.samples, data.dataset.root, data.contract

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, load_image(self.root / self.samples[index].path, self.contract), ""
        except UnreadableImageError as exc:
            return index, None, exc.reason


def _collate(items: list[tuple[int, np.ndarray | None, str]]) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``(images (B, C, H, W), sample indices (B,), [(index, reason) of unreadable ones])``."""
    good = [(index, image) for index, image, _ in items if image is not None]
    failures = [(index, reason) for index, image, reason in items if image is None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), failures
    images = torch.from_numpy(np.stack([image for _, image in good]))  # B x (C, H, W) -> (B, C, H, W)
    return images, torch.tensor([index for index, _ in good], dtype=torch.int64), failures


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for everything random in one epoch, derived from the run seed and the epoch."""
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def batch_seed(seed: int, epoch: int, index: int, rank: int = 0) -> int:
    """The seed of one training batch's augmentation: a pure function of the run seed, the epoch
    (0-based), the batch's index in the epoch and the process's rank.

    Because nothing else feeds it, a batch is augmented the same whether it is prepared
    ahead in a thread or not, and whether the run was resumed before it or not.
    """
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def check_classes(dataset: Dataset, num_classes: int, network_name: str) -> None:
    """Refuse a data set whose class count differs from the network's outputs."""
    if dataset.num_classes != num_classes:
        raise UserError(
            f"{display_path(dataset.root / 'classes.txt')} has {dataset.num_classes} classes but network config "
            f"{network_name!r} has num_classes {num_classes}; make them agree"
        )

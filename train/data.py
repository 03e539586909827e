"""Training data: list files -> uint8 image batches, in memory or decoded per batch.

Images go through :func:`common.images.load_image`, the same deterministic
preprocessing evaluation uses, under the shared unreadable-image policy
(:func:`common.images.handle_unreadable`); augmentation (train/augment.py) is
applied later, to training batches only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.contract import InputContract
from common.errors import UserError
from common.images import UnreadableImageError, handle_unreadable, load_image, load_samples
from common.lists import Dataset, Sample, open_dataset, read_split
from common.paths import display_path
from common.train_config import TrainConfig
from networks.config import NetworkConfig
from train.distributed import Processes, barrier

Batch = tuple[torch.Tensor, torch.Tensor]
"""``(images uint8 (B, C, H, W), labels int64 (B,))``."""


@dataclass
class SplitData:
    """One split, ready to batch.

    Attributes:
        name: Split name.
        list_path: Its list file.
        dataset: The data set.
        samples: The samples (when held in memory: the ones that decoded).
        labels: ``int64`` labels ``(N,)``.
        images: ``uint8`` images ``(N, C, H, W)`` when held in memory, else None.
        contract: The input contract images are decoded with.
        on_unreadable: The unreadable-image policy (``error`` or ``skip``).
        unreadable: ``<list file>:<line>`` of each image left out as unreadable (when
            streaming: found so far, each reported once).
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


def load_training_data(config: TrainConfig, network_config: NetworkConfig, processes: Processes) -> TrainingData:
    """Open the config's data set (rank 0 first: it may prepare the bundled digits) and load both splits.

    Raises:
        UserError: For a missing or invalid data set, a class count that differs from
            the network's, or a list-file or image problem.
    """
    if processes.is_main:
        dataset = open_dataset(config.data.dataset)
    barrier(processes)
    if not processes.is_main:
        dataset = open_dataset(config.data.dataset)
    check_classes(dataset, network_config.num_classes, network_config.name)
    data, contract = config.data, network_config.input
    return TrainingData(
        dataset=dataset,
        train=load_split(dataset, data.train_split, contract, data.on_unreadable, data.in_memory),
        val=load_split(dataset, data.val_split, contract, data.on_unreadable, data.in_memory),
    )


def load_split(dataset: Dataset, split: str, contract: InputContract, on_unreadable: str, in_memory: bool) -> SplitData:
    """Read a split's list file and, when ``in_memory``, decode every image once."""
    samples = read_split(dataset, split)
    images, unreadable = None, []
    if in_memory:
        array, labels, kept = load_samples(dataset, samples, contract, on_unreadable=on_unreadable)
        unreadable = [f"{s.source}:{s.line}" for s in sorted(set(samples) - set(kept), key=lambda s: s.line)]
        images, samples = torch.from_numpy(array), kept
    else:
        labels = np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))
    return SplitData(split, dataset.list_path(split), dataset, samples, torch.as_tensor(labels), images, contract,
                     on_unreadable, unreadable)


def epoch_order(size: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The sample order of one epoch for one process.

    Shuffling is seeded by ``(seed, epoch)`` alone, so it is the same after a resume.
    Under several processes the order is padded (by repeating from the start) to a
    multiple of ``world_size`` and dealt out, ``rank`` taking every ``world_size``-th.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(size, generator=generator)
    else:
        order = torch.arange(size)
    if world_size > 1:
        padded = -(-size // world_size) * world_size
        order = torch.cat([order, order[: padded - size]])[rank::world_size]
    return order


def iterate_batches(data: SplitData, order: torch.Tensor, batch_size: int, num_workers: int,
                    drop_singleton: bool) -> Iterator[Batch]:
    """Yield ``(images uint8 (B, C, H, W), labels int64 (B,))`` in ``order``.

    Args:
        data: The split.
        order: Sample indices, in order.
        batch_size: Samples per batch; the last batch may be smaller (and a batch
            streamed from disk loses the images skipped as unreadable).
        num_workers: Decoding processes when the split is not in memory.
        drop_singleton: Drop a last batch of one sample (batch norm cannot train on it).

    Raises:
        UnreadableImageError: For an unreadable image under the ``error`` policy, or a
            batch of which no image could be decoded.
    """
    chunks = list(torch.split(order, batch_size))
    if drop_singleton and chunks and len(chunks[-1]) == 1 and len(chunks) > 1:
        chunks.pop()
    if data.images is not None:
        for chunk in chunks:
            yield data.images.index_select(0, chunk), data.labels.index_select(0, chunk)
        return
    loader = torch.utils.data.DataLoader(
        _StreamedImages(data), batch_sampler=[c.tolist() for c in chunks], num_workers=num_workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(0),  # its own: drawing from the global one would shift dropout
    )
    for images, indices, failures in loader:
        for index, reason in failures:
            sample = data.samples[index]
            if f"{sample.source}:{sample.line}" not in data.unreadable:
                handle_unreadable(sample, reason, data.on_unreadable)
                data.unreadable.append(f"{sample.source}:{sample.line}")
        if len(indices) == 0:
            raise UnreadableImageError(f"{display_path(data.list_path)}: no image of a whole batch could be decoded")
        yield images, data.labels.index_select(0, indices)


def steps_per_epoch(size: int, batch_size: int, world_size: int) -> int:
    """Optimiser steps in one training epoch (matching :func:`iterate_batches`)."""
    per_rank = -(-size // world_size)
    steps, last = divmod(per_rank, batch_size)
    return steps + (1 if last > 1 or (last == 1 and steps == 0) else 0)


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


def check_classes(dataset: Dataset, num_classes: int, network_name: str) -> None:
    """Refuse a data set whose class count differs from the network's outputs."""
    if dataset.num_classes != num_classes:
        raise UserError(
            f"{display_path(dataset.root / 'classes.txt')} has {dataset.num_classes} classes but network config "
            f"{network_name!r} has num_classes {num_classes}; make them agree"
        )

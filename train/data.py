"""Training data: list files -> uint8 image batches, in memory or decoded per batch.

Images go through :func:`common.images.load_image`, the same deterministic
preprocessing evaluation uses; augmentation (train/augment.py) is applied later,
to training batches only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.contract import InputContract
from common.errors import UserError
from common.images import UnreadableImageError, load_image, load_samples
from common.lists import Dataset, Sample, read_split
from common.paths import display_path

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    """One split, ready to batch.

    Attributes:
        name: Split name.
        list_path: Its list file.
        dataset: The data set.
        samples: The samples kept (unreadable ones dropped when skipping).
        labels: ``int64`` labels ``(N,)``.
        images: ``uint8`` images ``(N, C, H, W)`` when held in memory, else None.
        contract: The input contract images are decoded with.
    """

    name: str
    list_path: Path
    dataset: Dataset
    samples: list[Sample]
    labels: torch.Tensor
    images: torch.Tensor | None
    contract: InputContract

    def __len__(self) -> int:
        return len(self.samples)


def load_split(dataset: Dataset, split: str, contract: InputContract, on_unreadable: str, in_memory: bool) -> SplitData:
    """Read a split's list file and, when ``in_memory``, decode every image once."""
    samples = read_split(dataset, split)
    images = None
    if in_memory:
        array, labels, samples = load_samples(dataset, samples, contract, on_unreadable=on_unreadable)
        images = torch.from_numpy(array)
    else:
        if on_unreadable == "skip":  # find the unreadable ones now; batches must not fail later
            samples = [s for s in samples if _readable(dataset, s, contract)]
            if not samples:
                raise UnreadableImageError(f"{display_path(dataset.list_path(split))}: no image could be decoded")
        labels = np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))
    return SplitData(split, dataset.list_path(split), dataset, samples, torch.as_tensor(labels), images, contract)


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
                    drop_singleton: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images uint8 (B, C, H, W), labels int64 (B,))`` in ``order``.

    Args:
        data: The split.
        order: Sample indices, in order.
        batch_size: Samples per batch; the last batch may be smaller.
        num_workers: Decoding processes when the split is not in memory.
        drop_singleton: Drop a last batch of one sample (batch norm cannot train on it).
    """
    chunks = list(torch.split(order, batch_size))
    if drop_singleton and chunks and len(chunks[-1]) == 1 and len(chunks) > 1:
        chunks.pop()
    if data.images is not None:
        for chunk in chunks:
            yield data.images.index_select(0, chunk), data.labels.index_select(0, chunk)
        return
    loader = torch.utils.data.DataLoader(
        _LazyImages(data), batch_sampler=[c.tolist() for c in chunks], num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),  # its own: drawing from the global one would shift dropout
    )
    try:
        yield from loader
    except UnreadableImageError as exc:
        message = str(exc).strip()
        if "Original Traceback" not in message:
            raise
        # A worker's error arrives with its traceback in the message; keep the user's part.
        raise UnreadableImageError(message.splitlines()[-1].split(": ", 1)[-1]) from None


def steps_per_epoch(size: int, batch_size: int, world_size: int) -> int:
    """Optimiser steps in one training epoch (matching :func:`iterate_batches`)."""
    per_rank = -(-size // world_size)
    steps, last = divmod(per_rank, batch_size)
    return steps + (1 if last > 1 or (last == 1 and steps == 0) else 0)


class _LazyImages(torch.utils.data.Dataset):
    def __init__(self, data: SplitData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.data.samples[index]
        try:
            image = load_image(self.data.dataset.image_path(sample), self.data.contract)
        except UnreadableImageError as exc:
            raise UnreadableImageError(f"{sample.source}:{sample.line}: {exc}") from None
        return torch.from_numpy(image), self.data.labels[index]


def _readable(dataset: Dataset, sample: Sample, contract: InputContract) -> bool:
    try:
        load_image(dataset.image_path(sample), contract)
        return True
    except UnreadableImageError as exc:
        log.warning("%s:%d: skipped unreadable image: %s", sample.source, sample.line, exc)
        return False


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

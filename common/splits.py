"""Stratified, seeded train / val / test / dev splits and the list files that record them.

Used by every command that writes a data set: the bundled digits
(:mod:`common.digits`) and a folder of the user's images (:mod:`common.folder_import`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.errors import UserError

TEST_FRACTION = 0.2
"""Share of all images in ``test``, by default."""

VAL_FRACTION = 0.1
"""Share of all images in ``val``, by default."""

DEV_PER_CLASS = 10
"""Images per class in ``dev`` (drawn from ``train``), by default."""

MAX_SEED = 2**32 - 1
"""The largest seed the shuffles take (numpy's and scikit-learn's ``random_state`` range)."""


def check_split_settings(seed: int, test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION,
                         dev_per_class: int = DEV_PER_CLASS) -> None:
    """Refuse split settings no split can be made with, naming the ``prepare-data`` option.

    Raises:
        UserError: For a seed outside 0..:data:`MAX_SEED`, fractions outside (0, 1)
            or adding up to 1 or more (not-a-number included), or fewer than one dev
            image per class.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed: an integer in 0..{MAX_SEED}, got {seed!r}")
    if not (0 < test_fraction < 1 and 0 < val_fraction < 1 and test_fraction + val_fraction < 1):
        raise UserError(f"--val and --test: need 0 < val, 0 < test and val + test < 1, got val {val_fraction} "
                        f"and test {test_fraction}")
    if dev_per_class < 1:
        raise UserError(f"--dev-per-class: must be at least 1, got {dev_per_class}")


def split_indices(labels: np.ndarray, seed: int, test_fraction: float = TEST_FRACTION,
                  val_fraction: float = VAL_FRACTION, dev_per_class: int = DEV_PER_CLASS) -> dict[str, np.ndarray]:
    """Stratified, seeded split of sample indices into train / val / test / dev.

    ``test`` takes ``test_fraction`` of the samples, ``val`` ``val_fraction`` of them
    (from the rest), ``train`` what remains; each class is represented in
    proportion. ``dev`` takes ``dev_per_class`` training samples of each class (all
    of a class's training samples when it has fewer).

    Args:
        labels: Class label per sample, shape ``(N,)``.
        seed: Seed of the shuffle.
        test_fraction: Share of the samples in ``test``, in (0, 1).
        val_fraction: Share of the samples in ``val``, in (0, 1).
        dev_per_class: Training samples per class in ``dev``.

    Returns:
        Sorted index arrays per split; ``dev`` is a subset of ``train``.

    Raises:
        UserError: When a setting is out of range (:func:`check_split_settings`), or
            there are too few samples of some class to give every split its share.
    """
    from sklearn.model_selection import train_test_split

    check_split_settings(seed, test_fraction, val_fraction, dev_per_class)
    indices = np.arange(len(labels))
    try:
        rest, test = train_test_split(indices, test_size=test_fraction, stratify=labels, random_state=seed)
        val_size = round(val_fraction * len(labels))
        train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=seed)
    except ValueError as exc:
        raise UserError(
            f"cannot split {len(labels)} images of {len(np.unique(labels))} classes into train, val "
            f"({val_fraction}) and test ({test_fraction}) with every class in each ({exc}); add images, "
            "or change the fractions") from None
    dev = dev_indices(train, labels, dev_per_class, seed)
    return {name: np.sort(split) for name, split in {"train": train, "val": val, "test": test, "dev": dev}.items()}


def dev_indices(train: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The ``dev`` split: ``per_class`` training samples of each class (all of a class's when it has fewer), seeded.

    Args:
        train: Indices of the training samples.
        labels: Class label of every sample ``(N,)``.
        per_class: Samples per class.
        seed: Seed of the choice.

    Returns:
        Sorted indices, a subset of ``train``.
    """
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(members, size=min(per_class, len(members)), replace=False)
              for members in (train[labels[train] == c] for c in np.unique(labels[train]))]
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def write_split_lists(root: Path, splits: dict[str, np.ndarray], paths: Sequence[str], labels: np.ndarray,
                      source: str) -> dict[str, int]:
    """Write ``<root>/lists/<split>.txt`` for each split.

    Args:
        root: The data set folder (``lists/`` is created in it).
        splits: Sample indices per split, e.g. from :func:`split_indices`.
        paths: Image path of each sample, relative to ``root``, ``/``-separated.
        labels: Label of each sample, ``(N,)``.
        source: What was split, for each file's first (comment) line.

    Returns:
        Samples per split.
    """
    (root / "lists").mkdir(parents=True, exist_ok=True)
    for name, members in splits.items():
        lines = [f"# {name} split of {source}; <path> <label>\n"]
        lines += [f"{paths[i]} {labels[i]}\n" for i in members]
        (root / "lists" / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
    return {name: len(members) for name, members in splits.items()}

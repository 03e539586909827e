"""The bundled data set: scikit-learn's handwritten digits written as image files.

``prepare_digits`` turns ``sklearn.datasets.load_digits`` (1797 grayscale 8x8
images of the digits 0-9, pixel values 0..16) into an ordinary data set folder, so
the bundled data goes through exactly the path a user's own images take::

    data/digits/
        classes.txt                    0 .. 9, one per line
        raw/<digit>/<index>.png        8x8 grayscale PNG, value * 255 / 16
        lists/{train,val,test,dev}.txt
        prepare.json                   how the folder was made

Splits are stratified by class with a seeded shuffle: ``test`` 20% (360 images),
``val`` 10% of the whole (180), ``train`` the remaining 1257, and ``dev`` 10 images
per class taken from ``train`` (100), for debug runs that finish in seconds.
"""

from __future__ import annotations

import filecmp
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserError
from common.list_versions import VERSIONED_FILES, record_created
from common.lists import (
    PREPARE_RECORD,
    Dataset,
    PrepareRecord,
    dataset_root,
    open_dataset,
    read_prepare_record,
    write_prepare_record,
)
from common.paths import data_dir, display_path
from common.provenance import command_text
from common.splits import DEV_PER_CLASS, check_split_settings, split_indices, write_split_lists
from common.staging import staged

log = logging.getLogger(__name__)

BUNDLED = "digits"
"""The name of the bundled data set under the data folder."""

DERIVED = ("packs/", *VERSIONED_FILES)
"""What is not compared when the digits are written again: packs made later (``pipenv run pack``), and the list
history (:mod:`common.list_versions`: its times differ; the lists themselves are compared)."""


@dataclass(frozen=True)
class PrepareResult:
    """What ``prepare_digits`` did.

    Attributes:
        root: The data set folder.
        action: ``"created"``, ``"unchanged"`` (already up to date) or ``"replaced"``.
        split_sizes: Number of samples per split.
        backup: Where the replaced folder was moved (only for ``"replaced"``).
    """

    root: Path
    action: str
    split_sizes: dict[str, int]
    backup: Path | None = None


def default_digits_root() -> Path:
    """``<data dir>/digits``: where the bundled data set lives by default."""
    return data_dir() / "digits"


def prepare_digits(root: Path | None = None, seed: int = 0, force: bool = False) -> PrepareResult:
    """Write the digits data set folder; idempotent and never destructive.

    The folder is first written in full beside the target, then compared with an
    existing one. Identical content (images compared by pixels, text by bytes)
    leaves everything as it was. A different existing folder is refused unless
    ``force``, which moves it aside to ``<root>.replaced-<time>`` instead of
    deleting it. The new folder appears by one rename, so an interrupted run
    never leaves a half-written data set.

    Args:
        root: The data set folder; defaults to :func:`default_digits_root`.
        seed: Seed of the stratified split.
        force: Replace a different existing folder (keeping it as a backup).

    Returns:
        What was done, and the split sizes.

    Raises:
        UserError: When ``seed`` is out of range, ``root`` exists with different
            content and ``force`` is off, or a file is in the way of ``root``.
    """
    root = Path(root) if root is not None else default_digits_root()
    check_split_settings(seed)
    with staged(root, exists="backup") as stage:
        sizes = _write_digits(stage.path, seed)
        if not root.exists():
            return PrepareResult(root=root, action="created", split_sizes=sizes)
        difference = _first_difference(stage.path, root)
        if difference is None:
            stage.cancel()
            return PrepareResult(root=root, action="unchanged", split_sizes=sizes)
        if not force:
            raise UserError(
                f"{display_path(root)} already exists and differs from the digits data set this "
                f"command writes ({difference}). Nothing was changed. Pass --force to replace it "
                "(the existing folder is kept as a backup beside it), or --out to write elsewhere."
            )
    return PrepareResult(root=root, action="replaced", split_sizes=sizes, backup=stage.backup)


def open_dataset_or_digits(name_or_path: str) -> Dataset:
    """Open a data set (:func:`common.lists.open_dataset`); the bundled ``digits`` is written first when missing.

    Raises:
        UserError: When the data set folder or its ``classes.txt`` is missing or invalid.
    """
    if name_or_path == BUNDLED:
        ensure_digits(dataset_root(name_or_path))
    return open_dataset(name_or_path)


def ensure_digits(root: Path | None = None) -> Path:
    """Prepare the digits data set if its folder does not exist yet.

    Args:
        root: The data set folder; defaults to :func:`default_digits_root`.

    Returns:
        The data set folder.
    """
    root = Path(root) if root is not None else default_digits_root()
    if not root.exists():
        result = prepare_digits(root)
        log.info("prepared the bundled digits data set in %s", display_path(result.root))
    return root


def _write_digits(root: Path, seed: int) -> dict[str, int]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8), 0..16 -> 0..255
    labels = digits.target.astype(np.int64)
    class_names = [str(name) for name in digits.target_names]
    paths = [f"raw/{labels[i]}/{i:04d}.png" for i in range(len(labels))]
    for i, relative in enumerate(paths):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(target, format="PNG")
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
    sizes = write_split_lists(root, split_indices(labels, seed), paths, labels, f"scikit-learn's digits (seed {seed})")
    record_created(root, command_text(), f"scikit-learn's digits (seed {seed})")
    write_prepare_record(root, PrepareRecord(
        source="sklearn.datasets.load_digits", seed=seed, split_sizes=sizes,
        details={"pixel_scale": "round(value * 255 / 16)", "dev": f"{DEV_PER_CLASS} per class, drawn from train"}))
    return sizes


def _first_difference(new: Path, old: Path) -> str | None:
    """Describe the first difference between two data set folders, or None."""
    new_files = {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()}
    old_files = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    new_files = {f for f in new_files if not f.startswith(DERIVED)}
    old_files = {f for f in old_files if not f.startswith(DERIVED)}
    if new_files - old_files:
        return f"{len(new_files - old_files)} file(s) missing there, e.g. {sorted(new_files - old_files)[0]}"
    if old_files - new_files:
        return f"{len(old_files - new_files)} extra file(s) there, e.g. {sorted(old_files - new_files)[0]}"
    for relative in sorted(new_files):
        a, b = new / relative, old / relative
        if relative.endswith(".png"):
            if not _same_pixels(a, b):
                return f"{relative} has other pixels"
        elif relative == PREPARE_RECORD:
            if _record(new) != _record(old):
                return f"{relative} records something else"
        elif not filecmp.cmp(a, b, shallow=False):
            return f"{relative} has other content"
    return None


def _record(root: Path) -> PrepareRecord | None:
    """A folder's ``prepare.json`` (compared by content, not layout); None when unreadable."""
    try:
        return read_prepare_record(root)
    except UserError:
        return None


def _same_pixels(a: Path, b: Path) -> bool:
    try:
        with Image.open(a) as image_a, Image.open(b) as image_b:
            return image_a.mode == image_b.mode and np.array_equal(np.asarray(image_a), np.asarray(image_b))
    except OSError:
        return False

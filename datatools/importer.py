"""What a reader found -> a new data set folder ``data/<ds>/``.

::

    classes.txt                 the reader's class names (line number = label)
    raw/<name>                  each image, copied or linked, never moved (the reader names it)
    lists/{train,val,test,dev}.txt   stratified, seeded splits (or the source's own)
    prepare.json                how the folder was made, and every file left out

Every image is decoded once (JPEGs at reduced scale, through the one batch decoder)
to check that the stages can read it; unreadable files are left out, counted and
listed. An existing data set is never overwritten, and the folder appears whole or
not at all (:func:`common.staging.staged`).
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.images import UnreadableImageError, decode_image, decode_in_batches
from common.list_versions import record_created
from common.lists import PrepareRecord, write_prepare_record
from common.paths import display_path
from common.provenance import command_text
from common.splits import (
    DEV_PER_CLASS,
    TEST_FRACTION,
    VAL_FRACTION,
    check_split_settings,
    dev_indices,
    split_indices,
    write_split_lists,
)
from common.staging import staged
from datatools.readers import LabelledImage, LeftOut, SourceImages, build_reader

LINK_MODES = ("copy", "symlink", "hardlink")
"""How images reach ``raw/``: copied, symbolic links to the originals, or hard links."""

MIN_PER_CLASS = 3
"""Readable images a class needs at least when the split rule assigns them: one for each of train, val and test."""

EXISTS_HINT = "choose another --name; an existing data set is never overwritten"

CHECK_SIZE = (64, 64)
"""The reduced size at which every imported file is decoded to check that it is readable."""


@dataclass(frozen=True)
class SplitSettings:
    """How the images are split (when the source does not assign the splits).

    Attributes:
        seed: Seed of the stratified shuffle.
        val_fraction: Share of the images in ``val``.
        test_fraction: Share of the images in ``test``.
        dev_per_class: Training images per class in ``dev``.
    """

    seed: int = 0
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    dev_per_class: int = DEV_PER_CLASS


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_dataset` wrote.

    Attributes:
        root: The new data set folder.
        class_counts: Readable images per class, in label order.
        split_sizes: Images per split.
        left_out: Files left out, with the reason.
    """

    root: Path
    class_counts: dict[str, int]
    split_sizes: dict[str, int]
    left_out: tuple[LeftOut, ...]


def import_dataset(reader: str, source: Path, root: Path, link: str = "copy",
                   settings: SplitSettings = SplitSettings(), options: dict | None = None) -> ImportResult:
    """Make a data set folder from any registered source format.

    Args:
        reader: The source format's registered name (``folder``, ``csv``; see :mod:`datatools.readers`).
        source: The source (a folder of class folders, a manifest, ...).
        root: The data set folder to create, e.g. ``data/flowers``; must not exist.
        link: One of :data:`LINK_MODES`. ``symlink`` points at the originals (which must
            then stay where they are); ``hardlink`` needs one file system.
        settings: Seed and split fractions (used where the source assigns no split).
        options: The reader's own options (``--reader-option``).

    Returns:
        What was written and what was left out.

    Raises:
        UserError: When a setting is out of range, the source is unusable (every problem
            of a manifest with its line), a class has too few readable images, ``root``
            exists or lies inside the source, or linking fails.
    """
    source, root = Path(source), Path(root)
    if link not in LINK_MODES:
        raise UserError(f"--link: {link!r} is not one of {list(LINK_MODES)}")
    check_split_settings(settings.seed, settings.test_fraction, settings.val_fraction, settings.dev_per_class)
    found_by = build_reader(reader, source, options)
    if os.path.lexists(root):
        raise UserError(f"{display_path(root)} already exists; {EXISTS_HINT}")
    if source.is_dir() and root.resolve().is_relative_to(source.resolve()):
        raise UserError(f"{display_path(root)} is inside {display_path(source)}; write the data set elsewhere")
    found = found_by.read()
    if len(found.classes) < 2:
        raise UserError(f"{display_path(source)}: every image has the class {found.classes[0]!r}; a classifier needs "
                        "at least two classes (add the images of the others)" if found.classes else
                        f"{display_path(source)}: no images")
    readable, left_out = readable_images(found)
    labels = np.array([found.classes.index(image.label) for image in readable], dtype=np.int64)
    splits = assign_splits(readable, labels, found.classes, settings, display_path(source))
    names = [f"raw/{image.name}" for image in readable]
    with staged(root, exists="refuse", hint=EXISTS_HINT) as stage:
        for image, target in zip(readable, names):
            place(image.path, stage.path / target, link)
        (stage.path / "classes.txt").write_text("".join(f"{name}\n" for name in found.classes), encoding="utf-8")
        described = found.description + (f" (seed {settings.seed})" if not _assigned(readable) else "")
        sizes = write_split_lists(stage.path, splits, names, labels, described)
        record_created(stage.path, command_text(), f"imported from {described}")
        counts = {name: int(n) for name, n in zip(found.classes, np.bincount(labels, minlength=len(found.classes)))}
        write_prepare_record(stage.path, PrepareRecord(
            source=str(source.resolve()), reader=reader, link=link, split_sizes=sizes, class_counts=counts,
            seed=settings.seed, val_fraction=None if _assigned(readable) else settings.val_fraction,
            test_fraction=None if _assigned(readable) else settings.test_fraction,
            dev_per_class=settings.dev_per_class, left_out=[asdict(entry) for entry in left_out]))
    return ImportResult(root, counts, sizes, tuple(left_out))


def readable_images(found: SourceImages, workers: int = 0) -> tuple[list[LabelledImage], list[LeftOut]]:
    """The images the stages can decode, and every file left out (the reader's, then the unreadable ones).

    Each file is decoded whole (JPEGs at reduced scale, which still reads every byte) by
    the stages' own rules (:func:`common.images.decode_image`: 8 bits, decompression
    bombs refused), in threads.
    """
    check = partial(decode_image, mode="RGB", fit=CHECK_SIZE)
    readable, left_out = [], list(found.left_out)
    for pairs in decode_in_batches(found.images, lambda image: image.path, check, 64, workers):
        for image, result in pairs:
            if isinstance(result, UnreadableImageError):
                left_out.append(LeftOut(image.where or image.name, result.reason))
            else:
                readable.append(image)
    return readable, left_out


def assign_splits(images: list[LabelledImage], labels: np.ndarray, classes: list[str], settings: SplitSettings,
                  source: str) -> dict[str, np.ndarray]:
    """Image indices per split: the source's own splits when it names them, else the stratified, seeded rule.

    ``dev`` is always drawn from ``train`` (``settings.dev_per_class`` per class).

    Raises:
        UserError: When a class has too few readable images for the rule, or the source's
            splits leave ``train`` or ``val`` empty.
    """
    if not _assigned(images):
        counts = np.bincount(labels, minlength=len(classes))
        few = [f"{classes[c]!r} ({counts[c]})" for c in range(len(classes)) if counts[c] < MIN_PER_CLASS]
        if few:
            raise UserError(f"{source}: class(es) with fewer than {MIN_PER_CLASS} readable images (one for each "
                            f"of train, val and test): {', '.join(few)}; add images or leave the class out")
        return split_indices(labels, settings.seed, settings.test_fraction, settings.val_fraction,
                             settings.dev_per_class)
    names = np.array([image.split for image in images])
    splits = {name: np.flatnonzero(names == name) for name in ("train", "val", "test")}
    empty = [name for name in ("train", "val") if not len(splits[name])]
    if empty:
        raise UserError(f"{source}: the source's split column puts no readable image in {' or '.join(empty)}; "
                        "training needs both (leave the split cells empty to let the seeded rule split)")
    splits["dev"] = dev_indices(splits["train"], labels, settings.dev_per_class, settings.seed)
    return {name: members for name, members in splits.items() if len(members)}


def _assigned(images: list[LabelledImage]) -> bool:
    """Whether the source named the images' splits (all of them: readers refuse a mix)."""
    return bool(images) and images[0].split is not None


def place(original: Path, target: Path, link: str) -> None:
    """Copy or link one image into a (staging) data set folder; the original is never moved or changed.

    Raises:
        UserError: When linking fails, with what to use instead.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if link == "copy":
            shutil.copyfile(original, target)
        elif link == "symlink":
            target.symlink_to(original.resolve())
        else:
            os.link(original, target)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        advice = ("hard links cannot cross file systems; use --link copy or --link symlink"
                  if exc.errno == errno.EXDEV else "use another --link mode")
        raise UserError(f"{display_path(original)}: cannot {link} it into the data set ({exc.strerror}); "
                        f"{advice}. Nothing was written.") from None

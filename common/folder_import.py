"""A folder of the user's images, one subfolder per class, made into a data set.

``pipenv run prepare-data --from-folder photos --name flowers`` reads the layout of
torchvision's ``ImageFolder``::

    photos/
        daisy/001.jpg
        daisy/2024/summer/002.png      nested folders inside a class are fine
        rose/...

and writes ``data/flowers/``::

    classes.txt                        class folder names, sorted (line number = label)
    raw/<class>/<path in the class folder>   the images, copied or linked, never moved
    lists/{train,val,test,dev}.txt     stratified, seeded splits
    prepare.json                       how the folder was made, and every file left out

Every file is decoded once (JPEGs at reduced scale) to check that Pillow reads it;
those it cannot read, hidden files and files outside a class folder are reported
and left out. An existing data set is never overwritten, and the folder appears
whole or not at all (:func:`common.staging.staged`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import write_json
from common.paths import display_path
from common.splits import (
    DEV_PER_CLASS,
    TEST_FRACTION,
    VAL_FRACTION,
    check_split_settings,
    split_indices,
    write_split_lists,
)
from common.staging import staged

FORMAT_VERSION = 1
"""Version of the ``prepare.json`` written here."""

LINK_MODES = ("copy", "symlink", "hardlink")
"""How images reach ``raw/``: copied, symbolic links to the originals, or hard links."""

PREPARE_RECORD = "prepare.json"
"""The file in the data set folder that records how it was made."""

MIN_PER_CLASS = 3
"""Readable images a class needs at least: one for each of train, val and test."""


@dataclass(frozen=True)
class SplitSettings:
    """How the images are split.

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
class LeftOut:
    """A file of the source folder that is not in the data set.

    Attributes:
        path: The file, relative to the source folder.
        reason: Why (Pillow's message for an unreadable image).
    """

    path: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_folder` wrote.

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


def import_folder(source: Path, root: Path, link: str = "copy",
                  settings: SplitSettings = SplitSettings()) -> ImportResult:
    """Make a data set folder from a class-per-folder tree of images.

    Args:
        source: The tree: one subfolder per class (its name is the class name),
            images anywhere below it, in any format Pillow reads.
        root: The data set folder to create, e.g. ``data/flowers``; must not exist.
        link: One of :data:`LINK_MODES`. ``symlink`` points at the originals (which
            must then stay where they are); ``hardlink`` needs one file system.
        settings: Seed and split fractions.

    Returns:
        What was written and what was left out.

    Raises:
        UserError: When a setting is out of range, the source is not a folder of
            class folders, a class has too few readable images, ``root`` exists, or
            linking fails.
    """
    source, root = Path(source), Path(root)
    if link not in LINK_MODES:
        raise UserError(f"--link: {link!r} is not one of {list(LINK_MODES)}")
    check_split_settings(settings.seed, settings.test_fraction, settings.val_fraction, settings.dev_per_class)
    if not source.is_dir():
        found = "a file, not a folder" if source.exists() else "no such folder"
        raise UserError(f"--from-folder {display_path(source)}: {found} (expected one subfolder of images per class)")
    if root.resolve().is_relative_to(source.resolve()):
        raise UserError(f"{display_path(root)} is inside {display_path(source)}; write the data set elsewhere")
    hint = "choose another --name; an existing data set is never overwritten"
    if os.path.lexists(root):
        raise UserError(f"{display_path(root)} already exists; {hint}")
    class_names, files, left_out = scan_class_folders(source)
    labels = np.array([label for label, _ in files], dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names))
    few = [f"{class_names[c]!r} ({counts[c]})" for c in range(len(class_names)) if counts[c] < MIN_PER_CLASS]
    if few:
        raise UserError(f"{display_path(source)}: class folder(s) with fewer than {MIN_PER_CLASS} readable images "
                        f"(one for each of train, val and test): {', '.join(few)}; add images or remove the folder")
    splits = split_indices(labels, settings.seed, settings.test_fraction, settings.val_fraction,
                           settings.dev_per_class)
    paths = [f"raw/{class_names[label]}/{relative}" for label, relative in files]
    with staged(root, exists="refuse", hint=hint) as stage:
        for (label, relative), target in zip(files, paths):
            _place(source / class_names[label] / relative, stage.path / target, link)
        (stage.path / "classes.txt").write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
        sizes = write_split_lists(stage.path, splits, paths, labels,
                                  f"{display_path(source)} (seed {settings.seed})")
        class_counts = {name: int(counts[c]) for c, name in enumerate(class_names)}
        write_json(stage.path / PREPARE_RECORD, {
            "format_version": FORMAT_VERSION, "source": str(source.resolve()), "link": link, **asdict(settings),
            "class_counts": class_counts, "split_sizes": sizes,
            "left_out": [asdict(entry) for entry in left_out]})
    return ImportResult(root, class_counts, sizes, tuple(left_out))


def scan_class_folders(source: Path) -> tuple[list[str], list[tuple[int, str]], list[LeftOut]]:
    """Find the classes and their readable images (folders and files in sorted order).

    Args:
        source: The tree of class folders.

    Returns:
        ``(class names, [(label, path relative to its class folder)], left out)``.

    Raises:
        UserError: When there are fewer than two class folders, or a folder name
            cannot be a class name.
    """
    class_names = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_names) < 2:
        raise UserError(f"{display_path(source)}: found {len(class_names)} class folder(s); a classifier needs at "
                        "least two (one subfolder of images per class)")
    bad = [name for name in class_names if name != name.strip() or not _usable_in_list(name)]
    if bad:
        raise UserError(f"{display_path(source)}: folder name(s) {bad} cannot be class names (leading or trailing "
                        "space, line break or backslash); rename them")
    files: list[tuple[int, str]] = []
    left_out = [LeftOut(p.name, "not inside a class folder") for p in sorted(source.iterdir())
                if p.is_file() and not p.name.startswith(".")]
    for label, name in enumerate(class_names):
        for path in _files_below(source / name):
            relative = path.relative_to(source / name).as_posix()
            shown = f"{name}/{relative}"
            if not _usable_in_list(relative):
                left_out.append(LeftOut(shown, "its name cannot go in a list file (leading or trailing space, "
                                               "line break or backslash); rename it"))
                continue
            reason = unreadable_reason(path)
            if reason is None:
                files.append((label, relative))
            else:
                left_out.append(LeftOut(shown, reason))
    return class_names, files, left_out


def unreadable_reason(path: Path) -> str | None:
    """Why the stages cannot decode an image file, or None when they can.

    Decodes the whole file (JPEGs at reduced scale, which still reads every byte)
    by the stages' own rules (:func:`common.images.decode_image`: 8 bits,
    decompression bombs refused) and converts it to RGB.
    """
    from common.images import UnreadableImageError, decode_image

    try:
        decode_image(path, "RGB", fit=(64, 64))
    except UnreadableImageError as exc:
        return exc.reason or type(exc).__name__
    return None


def linked_source(root: Path) -> Path | None:
    """The folder a ``--link symlink`` import's images link to (from its ``prepare.json``), else None."""
    try:
        record = json.loads((Path(root) / PREPARE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no record (not an import of this command) or a damaged one
    if not isinstance(record, dict):
        return None
    source = record.get("source")
    if record.get("link") != "symlink" or not isinstance(source, str) or len(Path(source).parts) < 2:
        return None  # not a symlink import, or a damaged record (never the whole file system)
    return Path(source)


def _files_below(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder``, in hidden-free folders, sorted by path."""
    found = []
    for top, folders, names in os.walk(folder, followlinks=True):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [Path(top) / name for name in names if not name.startswith(".")]
    return sorted(found)


def _usable_in_list(relative: str) -> bool:
    """Whether a path survives a list-file line (``<path> <label>``, stripped, ``/``-separated)."""
    return relative == relative.strip() and not any(c in relative for c in "\\\n\r")


def _place(original: Path, target: Path, link: str) -> None:
    """Copy or link one image into the staging folder; the original is never moved or changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if link == "copy":
            shutil.copyfile(original, target)
        elif link == "symlink":
            target.symlink_to(original.resolve())
        else:
            os.link(original, target)
    except OSError as exc:
        advice = ("hard links cannot cross file systems; use --link copy or --link symlink"
                  if exc.errno == errno.EXDEV else "use another --link mode")
        raise UserError(f"{display_path(original)}: cannot {link} it into the data set ({exc.strerror}); "
                        f"{advice}. Nothing was written.") from None

"""``prepare-data --from-<format> NEW --add-to <ds>``: new images into an existing data set, as a new list version.

Any registered reader finds the new images (a folder of class folders, a CSV manifest,
a list file such as a labelled ``to_label.txt``); the importer's readability check
leaves out what the stages cannot read. Then:

- an image whose decoded pixels are already in the data set (or twice in the source)
  is not added again; a near-duplicate (:mod:`datatools.review.duplicates`) is added
  and reported;
- existing images never move: a source that assigns another split to an image already
  in the data set is refused;
- the new images are split by the data set's own rule (its ``prepare.json``: seed,
  fractions; ``--seed``, ``--val``, ``--test`` override), stratified by class and seeded,
  new images only; the **test split is frozen** unless ``into_test``: then new images
  go to ``train`` and ``val`` in the data set's proportion (a source naming ``test`` is
  refused);
- files are copied or linked into ``raw/`` beside the old ones (a name already taken by
  another file gets ``-2``, ``-3`` ...), then the lists are published as new versions in
  one atomic step (:func:`common.list_versions.commit`, kind ``add``), with per image
  where it came from. Nothing in ``raw/`` is ever replaced or deleted.
"""

from __future__ import annotations

import inspect
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import FileProblems, UserError
from common.files import file_sha256, read_text
from common.list_versions import Change, commit, current_lists, lists_lock
from common.lists import Dataset, Sample, load_dataset, read_list, read_prepare_record, write_prepare_record
from common.paths import display_path
from common.provenance import command_text, now
from common.splits import TEST_FRACTION, VAL_FRACTION, check_split_settings
from datatools.importer import LINK_MODES, place, readable_images
from datatools.readers import READERS, LabelledImage, LeftOut, SourceImages, build_reader
from datatools.review.duplicates import duplicate_pairs, fingerprints
from datatools.review.findings import primary_split


@dataclass(frozen=True)
class AddSettings:
    """How new images are split; None takes the data set's own setting (``prepare.json``).

    Attributes:
        seed: Seed of the stratified assignment.
        val_fraction: Share of all images in ``val``.
        test_fraction: Share of all images in ``test``.
        into_test: Let new images into ``test`` (frozen otherwise).
    """

    seed: int | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    into_test: bool = False


@dataclass(frozen=True)
class AddResult:
    """What :func:`add_to_dataset` did.

    Attributes:
        root: The data set folder.
        added: New images per list.
        already_there: Images of the source not added: their pixels are in the data set (or earlier in the source).
        near_duplicates: Added images that look like one already there, one sentence each.
        left_out: Files of the source the stages cannot read, or the reader left out.
        change: The list-history entry (None when nothing was added).
    """

    root: Path
    added: dict[str, int]
    already_there: tuple[LeftOut, ...] = ()
    near_duplicates: tuple[str, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    change: Change | None = None


@dataclass
class _Batch:
    """The source's readable images and what the duplicate check decided about each."""

    images: list[LabelledImage]
    keep: list[bool] = field(default_factory=list)
    already_there: list[LeftOut] = field(default_factory=list)
    near: list[str] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)


def add_to_dataset(reader: str, source: Path, root: Path, link: str = "copy", settings: AddSettings = AddSettings(),
                   options: dict | None = None) -> AddResult:
    """Add the images of a source to an existing data set (see the module docstring).

    Raises:
        UserError: For a missing data set, an unknown link mode or split setting, a source that contains the
            data set or lies inside it, classes the data set does not have, an add that would move an existing
            image or put images in the frozen test split, or lists that changed meanwhile.
    """
    source, root = Path(source), Path(root)
    if link not in LINK_MODES:
        raise UserError(f"--link: {link!r} is not one of {list(LINK_MODES)}")
    data = load_dataset(root)
    split_settings = _split_settings(root, settings)
    _refuse_overlap(source, root)
    found = _read_source(reader, source, data, options)
    readable, left_out = readable_images(found)
    files = current_lists(root)
    before = {split: (file_sha256(path), read_text(path)) for split, path in files.items()}
    current = {split: read_list(data, path) for split, path in files.items()}
    batch = _check_duplicates(data, current, readable)
    problems = batch.moves + frozen_test(readable, settings.into_test)
    if problems:
        raise FileProblems(sorted(problems), "the images to add (existing images never move; the test split is frozen "
                           "without --into-test)")
    new = [image for image, kept in zip(batch.images, batch.keep) if kept]
    assigned = assign_new(new, data, split_settings, settings.into_test)
    if not new:
        return AddResult(root, {}, tuple(batch.already_there), tuple(batch.near), tuple(left_out))
    with lists_lock(root):  # refused here, naming the other writer, before any image is copied
        pass
    names: list[str] = []
    try:
        for image in new:
            names.append(place_new(image.path, root, image.name, link))
        change = _commit(data, before, new, names, assigned, source)
    except BaseException:
        _remove_placed(root, names, {image.path for image in new})
        raise
    _record_addition(root, reader, source, link, new, change)
    added = {split: int(sum(s == split for s in assigned)) for split in in_order(assigned)}
    return AddResult(root, added, tuple(batch.already_there), tuple(batch.near), tuple(left_out), change)


def _split_settings(root: Path, settings: AddSettings) -> tuple[int, float, float]:
    """``(seed, val, test)``: the given settings, else the data set's ``prepare.json``, else the defaults."""
    record = read_prepare_record(root)
    seed = settings.seed if settings.seed is not None else (record.seed if record and record.seed is not None else 0)
    val = settings.val_fraction or (record.val_fraction if record and record.val_fraction else VAL_FRACTION)
    test = settings.test_fraction or (record.test_fraction if record and record.test_fraction else TEST_FRACTION)
    check_split_settings(seed, test, val)
    return seed, val, test


def _refuse_overlap(source: Path, root: Path) -> None:
    """Refuse a source folder that holds the data set, or lies inside it."""
    if not source.exists():
        return  # the reader says what is missing
    here, there = source.resolve(), root.resolve()
    if source.is_dir() and there.is_relative_to(here):
        raise UserError(f"{display_path(source)}: it contains the data set {display_path(root)} itself; add from a "
                        "folder of new images only")
    if here.is_relative_to(there):
        raise UserError(f"{display_path(source)} is inside the data set {display_path(root)}; its images are already "
                        "there (add images from outside it)")


def _read_source(reader: str, source: Path, data: Dataset, options: dict | None) -> SourceImages:
    """What the reader found, checked: known classes only, no image inside the data set.

    Raises:
        UserError: For classes the data set does not have.
        FileProblems: For images inside the data set folder, each with its line.
    """
    options = dict(options or {})
    if "classes" in inspect.signature(READERS.get(reader)).parameters:
        options.setdefault("classes", list(data.class_names))  # indices read against the target's classes
    found = build_reader(reader, source, options).read()
    unknown = [name for name in found.classes if name not in data.class_names]
    if unknown:
        raise UserError(f"{display_path(source)}: class(es) {unknown[:10]} are not in "
                        f"{display_path(data.root / 'classes.txt')} {list(data.class_names)[:20]}; an addition keeps "
                        "the classes (every model's outputs depend on them): rename them, or make a new data set")
    inside = [f"{image.where or image.name}: {display_path(image.path)} is already inside the data set folder"
              for image in found.images if Path(image.path).resolve().is_relative_to(data.root.resolve())]
    if inside:
        raise FileProblems(inside, "the images to add")
    return found


def _check_duplicates(data: Dataset, current: dict[str, list[Sample]], readable: list[LabelledImage]) -> _Batch:
    """Mark each new image kept or not: exact copies of listed images (or of an earlier new one) are not added;
    a copy that the source assigns to another split than its listed original's is a move (``_Batch.moves``)."""
    splits: dict[str, list[str]] = {}
    labels: dict[str, int] = {}
    for split, samples in current.items():
        for sample in samples:
            splits.setdefault(sample.path, []).append(split)
            labels[sample.path] = sample.label
    old = sorted(splits)
    prints = fingerprints(data.root, [*old, *(str(image.path) for image in readable)])
    position = {path: index for index, path in enumerate(prints.paths)}
    new_index = {position[str(image.path)]: n for n, image in enumerate(readable) if str(image.path) in position}
    batch = _Batch(readable, [True] * len(readable))
    pairs = duplicate_pairs(prints, only=np.array(sorted(new_index), dtype=np.int64))
    for pair in sorted(pairs, key=lambda p: min(p.first, p.second) in new_index):  # copies of listed images first
        first, second = sorted((pair.first, pair.second))
        image = readable[new_index[second]]
        if not batch.keep[new_index[second]]:
            continue
        if first in new_index:  # two new images
            other = readable[new_index[first]]
            if pair.exact:
                batch.keep[new_index[second]] = False
                batch.already_there.append(LeftOut(image.where or image.name, f"the same picture as {other.where}"))
            else:
                batch.near.append(f"{image.where or image.name} looks like {other.where} (similarity "
                                  f"{pair.similarity:.4f})")
            continue
        there = prints.paths[first]
        if pair.exact:
            batch.keep[new_index[second]] = False
            note = (f"; labelled {data.class_names[labels[there]]!r} there, {image.label!r} here (not changed: use "
                    "review and apply to relabel)" if data.class_names[labels[there]] != image.label else "")
            batch.already_there.append(LeftOut(image.where or image.name, f"already in the data set as {there}{note}"))
            if image.split and image.split != primary_split(splits[there]):
                batch.moves.append(f"{image.where}: {display_path(image.path)} is already in the data set as {there} (in "
                             f"{primary_split(splits[there])}); adding it to {image.split} would move it")
        else:
            batch.near.append(f"{image.where or image.name} looks like {there} (similarity {pair.similarity:.4f}); "
                              "added")
    return batch


def assign_new(images: list[LabelledImage], data: Dataset, settings: tuple[int, float, float],
               into_test: bool) -> list[str]:
    """The list of each new image: the source's own split, else the data set's fractions, per class, seeded.

    Without ``into_test`` no image goes to ``test``: ``val`` takes ``val / (1 - test)`` of
    the new images (the data set's val-to-rest proportion), ``train`` the rest. With it,
    ``test`` takes ``test`` of them, ``val`` ``val``, ``train`` the rest. Each share is
    spread over the classes in proportion (:func:`quotas`).
    """
    seed, val, test = settings
    assigned = [image.split or "" for image in images]
    rng = np.random.default_rng(seed)
    members = [[n for n, image in enumerate(images) if not image.split and image.label == name]
               for name in data.class_names]
    counts = np.array([len(m) for m in members])
    shares = (test, val) if into_test else (0.0, val / (1 - test))
    n_test = quotas(counts, shares[0], rng)
    n_val = quotas(counts, shares[1], rng)
    for chosen, t, v in zip(members, n_test, n_val):
        v = min(v, len(chosen) - t)
        for rank, position in enumerate(rng.permutation(len(chosen))):
            assigned[chosen[position]] = "test" if rank < t else "val" if rank < t + v else "train"
    return assigned


def in_order(splits: list[str]) -> list[str]:
    """The distinct lists named, train, val and test first."""
    known = ("train", "val", "test")
    return sorted(set(splits), key=lambda split: (known.index(split) if split in known else len(known), split))


def frozen_test(images: list[LabelledImage], into_test: bool) -> list[str]:
    """A problem per image the source puts in ``test`` while it is frozen (without ``into_test``)."""
    return [f"{image.where}: the source puts {display_path(image.path)} in test, which is frozen (new images would "
            "change what every earlier evaluation measured); pass --into-test to allow it"
            for image in images if image.split == "test" and not into_test]


def quotas(counts: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """How many of each class's ``counts`` images go to a split taking ``share`` of them: stratified over the
    whole batch (largest remainders, ties broken at random), so a batch of few images per class still adds its
    share (``round(total * share)``)."""
    exact = counts * share
    taken = np.floor(exact).astype(np.int64)
    missing = int(round(counts.sum() * share)) - int(taken.sum())
    if missing > 0:
        remainders = exact - taken + rng.random(len(counts)) * 1e-9  # random order among equal remainders
        for index in np.argsort(-remainders)[:missing]:
            taken[index] += 1 if taken[index] < counts[index] else 0
    return taken


def _remove_placed(root: Path, names: list[str], originals: set[Path]) -> None:
    """Take back the images an add placed in ``raw/`` when it cannot commit them (never a file it did not copy)."""
    for name in names:
        path = root / name
        if path.is_file() and path not in originals:
            path.unlink(missing_ok=True)


def place_new(original: Path, root: Path, name: str, link: str) -> str:
    """Copy or link one new image into ``raw/`` under a free name (``-2``, ``-3`` ... when taken); returns its path.

    A file already at the name with the same bytes (left by an interrupted add) is used as it is. Each file
    appears whole: it is written under a temporary name and renamed.
    """
    target = root / "raw" / name
    stem, suffix, number = target.stem, target.suffix, 1
    while os.path.lexists(target):
        if target.is_file() and file_sha256(target) == file_sha256(original):
            return target.relative_to(root).as_posix()
        number += 1
        target = target.with_name(f"{stem}-{number}{suffix}")
    temporary = target.with_name(f".{target.name}.tmp-{socket.gethostname()}-{os.getpid()}.add.tmp")
    try:
        place(original, temporary, link)
        os.replace(temporary, target)
    finally:
        if os.path.lexists(temporary):
            temporary.unlink()
    return target.relative_to(root).as_posix()


def _commit(data: Dataset, before: dict[str, tuple[str, str]], new: list[LabelledImage], names: list[str],
            assigned: list[str], source: Path) -> Change:
    """Publish the lists (as read before: ``split -> (sha256, text)``) with the new images appended, as one
    new version; the commit refuses when a list changed since it was read."""
    texts: dict[str, str] = {}
    for split in in_order(assigned):
        text = before[split][1] if split in before else f"# {split} split; <path> <label>\n"
        texts[split] = (text if text.endswith("\n") or not text else text + "\n") + "".join(
            f"{name} {data.class_names.index(image.label)}\n"
            for image, name, where in zip(new, names, assigned) if where == split)
    images = [{"path": name, "lists": [split], "change": "add", "from": None, "to": image.label,
               "why": f"added from {image.where or display_path(image.path)}"}
              for image, name, split in zip(new, names, assigned)]
    counts = {f"added_to_{split}": int(sum(s == split for s in assigned)) for split in texts}
    expected = {split: before[split][0] for split in texts if split in before}
    return commit(data.root, texts, "add", command_text(), f"new images from {display_path(source)}", counts, images,
                  expected)


def _record_addition(root: Path, reader: str, source: Path, link: str, new: list[LabelledImage], change: Change) -> None:
    """Note the addition in ``prepare.json`` (where symbolic links may point: thumbnails read them)."""
    record = read_prepare_record(root)
    if record is None:
        return
    folder = os.path.commonpath([str(Path(image.path).resolve().parent) for image in new]) if link == "symlink" else None
    entry: dict[str, Any] = {"source": str(source.resolve()), "reader": reader, "link": link, "time": now(),
                             "change": change.change, "added": len(new), "linked_folder": folder}
    write_prepare_record(root, replace(record, additions=[*record.additions, entry]))

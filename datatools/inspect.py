"""Look at a data set before training on it, and measure its input statistics (``pipenv run inspect-data``).

Writes ``output/inspect/<ds>/``: ``samples_<split>.png`` (a grid of sample images
per class, labelled), ``class_counts.png`` and ``class_counts.csv`` (images per class
and split), ``image_profile.csv`` (colour modes, formats and sizes per class),
``report.json`` and ``report.txt``, and prints the problems found: list-file errors,
unreadable images, class imbalance (largest / smallest class above a threshold, or
classes with no image; a split with too few images per class gets a note instead),
the same image in two splits (by a hash of the decoded pixels, so re-encoded copies
count too; the ``dev`` split, a subset of ``train`` by design, is left out of that
check), shortcuts (a class whose files all share a colour mode, format or size rare
in the other classes) and a colour mode that does not fit the data.

It also measures the per-channel mean and standard deviation of the ``train`` split
as a network would see it (decoded by :func:`common.images.to_network_input` at a
given size and colour mode), streaming over the images, and can write a shared
network config with that input contract (``--write-network``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.contract import COLOR_MODES, InputContract
from common.digits import open_dataset_or_digits
from common.errors import UserError
from common.limits import MAX_GRID_PER_CLASS
from common.files import atomic_write_text, write_csv, write_json
from common.images import UnreadableImageError, decode_image, load_thumbnail, to_network_input
from common.list_versions import is_derived
from common.lists import Dataset, ListFileError, Sample, read_split
from common.paths import display_path, output_dir
from common.plotting import new_figure, safe_text, save_figure
from common.staging import refuse_foreign_target, staged
from datatools.profile import ChannelStats, FileProfile, read_header, tiny_split_note

DEV_SPLIT = "dev"
"""The quick-check subset of train; not checked for images shared with other splits."""

STATS_SPLIT = "train"
"""The split whose pixel statistics go into the input contract."""

REPORT = "report.json"
"""The file every inspection folder holds; an existing ``--out`` without it is never replaced."""

GRID_THUMBNAIL = 96
"""Largest side, in pixels, of an image in the sample grids (decoded at reduced scale)."""

GRID_LABEL_INCHES = 1.6
"""Room left of a sample grid for the class names (24 characters at most, as drawn)."""

GRID_CLASSES = 60
"""Classes (rows) drawn in a sample grid at most: the first ones; figures have a size limit."""

LABELLED_CLASSES = 100
"""Classes whose names label the class-count plot at most (more would overlap)."""


@dataclass(frozen=True)
class StatsSettings:
    """The input contract at which pixel statistics are measured.

    Attributes:
        height: Network input height.
        width: Network input width.
        color_mode: ``L`` or ``RGB``; None picks RGB when any file is in colour, else L.
        interpolation: Resize filter (one of ``common.contract.INTERPOLATIONS``).
    """

    height: int = 64
    width: int = 64
    color_mode: str | None = None
    interpolation: str = "bilinear"


@dataclass
class Inspection:
    """What :func:`inspect_dataset` found.

    Attributes:
        folder: The output folder.
        class_names: The data set's class names.
        counts: ``split -> class name -> images``.
        problems: Every problem, one line each.
        duplicates: Groups of identical images found in more than one split.
        unreadable: ``list:line: path`` of images that cannot be decoded.
        notes: Remarks that are not problems (e.g. a split too small to judge balance).
        profile: Colour modes, formats and sizes per class (every listed file once).
        contract: The input contract measured on the train split (None without one).
        stats_images: Images the statistics were measured on.
    """

    folder: Path
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    problems: list[str] = field(default_factory=list)
    duplicates: list[list[dict[str, Any]]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: FileProfile | None = None
    contract: InputContract | None = None
    stats_images: int = 0


def inspect_dataset(name_or_path: str = "digits", out: Path | None = None, per_class: int = 8,
                    imbalance_threshold: float = 3.0, stats: StatsSettings = StatsSettings()) -> Inspection:
    """Inspect every split in ``<data set>/lists/``, measure the train split's statistics, write the report.

    Args:
        name_or_path: A data set under the data folder, or its path.
        out: Output folder (default ``output/inspect/<data set>``); replaced if it exists.
        per_class: Sample images per class in each grid.
        imbalance_threshold: Largest-to-smallest class ratio reported as imbalance.
        stats: The size and colour mode at which the statistics are measured.

    Raises:
        UserError: When the data set or its ``classes.txt`` is unusable, it has no
            list file, or a statistics setting is invalid.
    """
    dataset = open_dataset_or_digits(name_or_path)
    splits = sorted(p.stem for p in (dataset.root / "lists").glob("*.txt") if not is_derived(p.stem))  # no cv folds
    if not splits:
        raise UserError(f"{display_path(dataset.root / 'lists')}: no list files")
    _check_settings(per_class, imbalance_threshold)
    result = Inspection(folder=out or output_dir() / "inspect" / dataset.root.name,
                        class_names=dataset.class_names, counts={})
    refuse_foreign_target(result.folder, REPORT, "--out")
    samples_by_split: dict[str, list[Sample]] = {}
    for split in splits:
        try:
            samples_by_split[split] = read_split(dataset, split)
        except ListFileError as exc:
            result.problems += exc.problems
    result.profile = _profile(dataset, samples_by_split)
    color_mode = stats.color_mode or result.profile.auto_color_mode()
    channels = COLOR_MODES.get(color_mode, 1)
    probe = InputContract(color_mode, stats.height, stats.width, stats.interpolation, (0.0,) * channels,
                          (1.0,) * channels)
    owners, channel_stats = _decode(dataset, samples_by_split, probe, result)
    result.problems += [f"unreadable image: {u}" for u in result.unreadable]
    _find_duplicates(owners, result)
    _check_balance(result, imbalance_threshold)
    result.problems += result.profile.shortcut_warnings()
    if stats.color_mode:
        result.problems += [w for w in [result.profile.contract_warning(color_mode)] if w]
    if channel_stats.pixels:
        mean, std = channel_stats.rounded()
        result.contract = InputContract(color_mode, stats.height, stats.width, stats.interpolation, mean, std)
    else:
        result.notes.append(f"no readable {STATS_SPLIT} split: no input statistics")
    _write(result, dataset, samples_by_split, per_class)
    return result


def _check_settings(per_class: int, imbalance_threshold: float) -> None:
    """Refuse report settings that cannot work, naming the option."""
    if not 1 <= per_class <= MAX_GRID_PER_CLASS:
        raise UserError(f"--per-class: images per class in the grids must be 1 to {MAX_GRID_PER_CLASS} (a grid row "
                        f"of each class), got {per_class}")
    if not math.isfinite(imbalance_threshold) or imbalance_threshold < 1:
        raise UserError(f"--imbalance: the largest-to-smallest class ratio must be a number of at least 1, "
                        f"got {imbalance_threshold}")


def _profile(dataset: Dataset, samples_by_split: dict[str, list[Sample]]) -> FileProfile:
    """Colour modes, formats and sizes from the headers of every listed file (each path once)."""
    profile = FileProfile(dataset.class_names)
    seen: set[str] = set()
    for samples in samples_by_split.values():
        for sample in samples:
            if sample.path in seen:
                continue
            seen.add(sample.path)
            header = read_header(str(dataset.image_path(sample)))
            if header is not None:
                profile.add(sample.label, *header)
    return profile


def _decode(dataset: Dataset, samples_by_split: dict[str, list[Sample]], probe: InputContract,
            result: Inspection) -> tuple[dict[str, list[dict[str, Any]]], ChannelStats]:
    """Decode every image once: count it, hash its pixels, and add the train split's to the statistics.

    Returns:
        ``(pixel hash -> where the image is listed, train statistics)``.
    """
    owners: dict[str, list[dict[str, Any]]] = {}
    channel_stats = ChannelStats(probe.channels)
    for split, samples in samples_by_split.items():
        counts = dict.fromkeys(dataset.class_names, 0)
        for sample in samples:
            counts[dataset.class_names[sample.label]] += 1
            try:
                image = decode_image(dataset.image_path(sample))
            except UnreadableImageError as exc:
                result.unreadable.append(f"{sample.source}:{sample.line}: {sample.path} ({exc.reason})")
                continue
            digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()
            if split == STATS_SPLIT:
                channel_stats.add(to_network_input(image, probe))
                result.stats_images += 1
            owners.setdefault(digest, []).append({"split": split, "path": sample.path, "line": sample.line})
        result.counts[split] = counts
    return owners, channel_stats


def _find_duplicates(owners: dict[str, list[dict[str, Any]]], result: Inspection) -> None:
    for group in owners.values():
        # dev is drawn from train by design, so it is left out of the leak check
        if len({entry["split"] for entry in group if entry["split"] != DEV_SPLIT}) > 1:
            result.duplicates.append(group)
            listed = ", ".join(f"{e['split']}:{e['path']}" for e in group)
            result.problems.append(f"the same image is in more than one split: {listed}")


def _check_balance(result: Inspection, imbalance_threshold: float) -> None:
    for split, counts in result.counts.items():
        present = [c for c in counts.values() if c]
        empty = [name for name, c in counts.items() if not c]
        if empty and split != DEV_SPLIT:
            result.problems.append(f"{split}: no image of class(es) {empty}")
        note = tiny_split_note(split, sum(counts.values()), len(counts))
        if note:
            result.notes.append(note)
        elif present and max(present) / min(present) > imbalance_threshold:
            largest = max(counts, key=counts.get)
            smallest = min((n for n in counts if counts[n]), key=counts.get)
            result.problems.append(f"{split}: class imbalance {max(present) / min(present):.1f}x (largest "
                                   f"{largest!r} {counts[largest]}, smallest {smallest!r} {counts[smallest]})")


def _write(result: Inspection, dataset: Dataset, samples_by_split: dict[str, list[Sample]], per_class: int) -> None:
    with staged(result.folder, exists="replace") as stage:
        for split, samples in samples_by_split.items():
            _sample_grid(stage.path / f"samples_{split}.png", dataset, samples, split, per_class)
        _count_plot(stage.path / "class_counts.png", result.counts, dataset.class_names)
        write_csv(stage.path / "class_counts.csv", ["class", *result.counts],
                  ([name, *(result.counts[s][name] for s in result.counts)] for name in dataset.class_names))
        profile = result.profile.to_dict() if result.profile else {}
        write_csv(stage.path / "image_profile.csv", ["class", "attribute", "value", "files"],
                  ([name, attribute, value, files] for name, attributes in profile.items()
                   for attribute, values in attributes.items() for value, files in values.items()))
        write_json(stage.path / REPORT, {
            "dataset": display_path(dataset.root), "classes": list(dataset.class_names), "counts": result.counts,
            "statistics": _statistics(result), "problems": result.problems, "notes": result.notes,
            "duplicates": result.duplicates, "unreadable": result.unreadable, "profile": profile})
        lines = [f"data set: {display_path(dataset.root)}", f"classes: {len(dataset.class_names)}", ""]
        lines += summary_lines(result) + ["", "files per class (from their headers):"]
        for name, attributes in profile.items():
            described = "; ".join(f"{attribute} " + ", ".join(f"{v} {n}" for v, n in list(values.items())[:3])
                                  + (f" (+{len(values) - 3} more)" if len(values) > 3 else "")
                                  for attribute, values in attributes.items())
            lines.append(f"  {name}: {described}")
        atomic_write_text(stage.path / "report.txt", "\n".join(lines) + "\n")


def _statistics(result: Inspection) -> dict[str, Any] | None:
    if result.contract is None:
        return None
    return {"split": STATS_SPLIT, "images": result.stats_images, **result.contract.to_dict()}


def summary_lines(result: Inspection) -> list[str]:
    """Images per split, the measured statistics, notes and problems, as the console and report.txt show them."""
    lines = [f"{split}: {sum(counts.values())} images in {sum(1 for c in counts.values() if c)} classes"
             for split, counts in result.counts.items()]
    contract = result.contract
    if contract is not None:
        lines.append(f"{STATS_SPLIT} statistics ({result.stats_images} images at {contract.height}x{contract.width}, "
                     f"{contract.color_mode}, {contract.interpolation}): mean {list(contract.mean)}, "
                     f"std {list(contract.std)}")
    lines += [f"note: {note}" for note in result.notes]
    lines.append(f"{len(result.problems)} problem(s)" + (":" if result.problems else ""))
    return lines + [f"  {problem}" for problem in result.problems]


def _sample_grid(path: Path, dataset: Dataset, samples: list[Sample], split: str, per_class: int) -> None:
    import numpy as np

    classes = dataset.class_names[:GRID_CLASSES]
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        if sample.label < len(classes) and len(by_class.setdefault(sample.label, [])) < per_class:
            by_class[sample.label].append(sample)
    width, height = per_class * 1.1 + GRID_LABEL_INCHES, len(classes) * 1.2 + 0.5  # inches: the names, the title
    figure = new_figure(width, height, dpi=90, layout="none")  # placed by hand: a layout engine takes seconds here
    figure.subplots_adjust(left=GRID_LABEL_INCHES / width, right=0.99, bottom=0.1 / height, top=1 - 0.5 / height,
                           wspace=0.08, hspace=0.12)
    panels = figure.subplots(len(classes), per_class, squeeze=False)
    for row, name in enumerate(classes):
        for column in range(per_class):
            axis = panels[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(safe_text(name), rotation=0, ha="right", va="center", fontsize=9)
            members = by_class.get(row, [])
            if column < len(members):
                try:
                    thumbnail = load_thumbnail(dataset.image_path(members[column]), GRID_THUMBNAIL)
                    axis.imshow(np.asarray(thumbnail), interpolation="nearest")
                except UnreadableImageError:
                    axis.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=6)
            else:
                axis.axis("off")
    shown = "" if len(classes) == len(dataset.class_names) else f", the first {len(classes)} of " \
        f"{len(dataset.class_names)} classes"
    figure.suptitle(f"{safe_text(split)}: up to {per_class} images per class (rows = classes{shown})", fontsize=10)
    save_figure(figure, path)


def _count_plot(path: Path, counts: dict[str, dict[str, int]], class_names: Sequence[str]) -> None:
    import numpy as np

    width_inches = min(60.0, max(6.0, 0.5 * len(class_names) * max(1, len(counts)) / 2))  # figures have a size limit
    figure = new_figure(width_inches, 4)
    axes = figure.subplots()
    width = 0.8 / max(1, len(counts))
    positions = np.arange(len(class_names))
    for index, (split, per_class) in enumerate(counts.items()):
        axes.bar(positions + index * width, [per_class[n] for n in class_names], width, label=safe_text(split))
    if len(class_names) <= LABELLED_CLASSES:
        axes.set_xticks(positions + width * (len(counts) - 1) / 2, [safe_text(name) for name in class_names],
                        rotation=90 if len(class_names) > 12 else 0)
    axes.set(ylabel="images", title="Images per class and split")
    axes.legend()
    save_figure(figure, path)

"""``pipenv run inspect-data``: look at a data set before training on it.

Writes ``output/inspect/<ds>/``: ``samples_<split>.png`` (a grid of sample images
per class, labelled), ``class_counts.png`` and ``class_counts.csv`` (images per class
and split), ``report.json`` and ``report.txt``, and prints the problems found:
list-file errors, unreadable images, class imbalance (largest / smallest class
above a threshold, or classes with no image), and the same image in two splits
(by a hash of the decoded pixels, so re-encoded copies count too; the ``dev`` split,
a subset of ``train`` by design, is left out of that check).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cli import command_parser, run_main
from common.errors import UserError
from common.files import atomic_write_text, write_csv, write_json
from common.lists import Dataset, ListFileError, Sample, open_dataset, read_split
from common.paths import display_path, output_dir
from common.staging import staged


DESCRIPTION = (
    "Look at a data set before training on it: sample grids and class counts per split, and "
    "problems (list errors, unreadable images, class imbalance, images shared by two splits), "
    "written to output/inspect/<data set>/."
)
"""What ``--help`` says the command does."""

DEV_SPLIT = "dev"
"""The quick-check subset of train; not checked for images shared with other splits."""


@dataclass
class Inspection:
    """What :func:`inspect_dataset` found.

    Attributes:
        folder: The output folder.
        counts: ``split -> class name -> images``.
        problems: Every problem, one line each.
        duplicates: Groups of identical images found in more than one split.
        unreadable: ``list:line: path`` of images that cannot be decoded.
    """

    folder: Path
    counts: dict[str, dict[str, int]]
    problems: list[str] = field(default_factory=list)
    duplicates: list[list[dict[str, Any]]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def inspect_dataset(name_or_path: str = "digits", out: Path | None = None, per_class: int = 8,
                    imbalance_threshold: float = 3.0) -> Inspection:
    """Inspect every split in ``<data set>/lists/`` and write the report.

    Args:
        name_or_path: A data set under the data folder, or its path.
        out: Output folder (default ``output/inspect/<data set>``); replaced if it exists.
        per_class: Sample images per class in each grid.
        imbalance_threshold: Largest-to-smallest class ratio reported as imbalance.
    """
    from PIL import Image, ImageOps

    dataset = open_dataset(name_or_path)
    splits = sorted(p.stem for p in (dataset.root / "lists").glob("*.txt"))
    if not splits:
        raise UserError(f"{display_path(dataset.root / 'lists')}: no list files")
    result = Inspection(folder=out or output_dir() / "inspect" / dataset.root.name, counts={})
    samples_by_split: dict[str, list[Sample]] = {}
    for split in splits:
        try:
            samples_by_split[split] = read_split(dataset, split)
        except ListFileError as exc:
            result.problems += exc.problems
    owners: dict[str, list[dict[str, Any]]] = {}
    for split, samples in samples_by_split.items():
        counts = dict.fromkeys(dataset.class_names, 0)
        for sample in samples:
            counts[dataset.class_names[sample.label]] += 1
            try:
                with Image.open(dataset.image_path(sample)) as opened:
                    image = ImageOps.exif_transpose(opened)
                    digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()
            except (OSError, ValueError) as exc:
                result.unreadable.append(f"{sample.source}:{sample.line}: {sample.path} ({exc})")
                continue
            owners.setdefault(digest, []).append({"split": split, "path": sample.path, "line": sample.line})
        result.counts[split] = counts
    result.problems += [f"unreadable image: {u}" for u in result.unreadable]
    for group in owners.values():
        # dev is drawn from train by design, so it is left out of the leak check
        if len({entry["split"] for entry in group if entry["split"] != DEV_SPLIT}) > 1:
            result.duplicates.append(group)
            listed = ", ".join(f"{e['split']}:{e['path']}" for e in group)
            result.problems.append(f"the same image is in more than one split: {listed}")
    for split, counts in result.counts.items():
        present = [c for c in counts.values() if c]
        empty = [name for name, c in counts.items() if not c]
        if empty and split != "dev":
            result.problems.append(f"{split}: no image of class(es) {empty}")
        if present and max(present) / min(present) > imbalance_threshold:
            largest = max(counts, key=counts.get)
            smallest = min((n for n in counts if counts[n]), key=counts.get)
            result.problems.append(f"{split}: class imbalance {max(present) / min(present):.1f}x (largest "
                                   f"{largest!r} {counts[largest]}, smallest {smallest!r} {counts[smallest]})")
    _write(result, dataset, samples_by_split, per_class)
    return result


def _write(result: Inspection, dataset: Dataset, samples_by_split: dict[str, list[Sample]], per_class: int) -> None:
    with staged(result.folder, exists="replace") as stage:
        for split, samples in samples_by_split.items():
            _sample_grid(stage.path / f"samples_{split}.png", dataset, samples, split, per_class)
        _count_plot(stage.path / "class_counts.png", result.counts, dataset.class_names)
        write_csv(stage.path / "class_counts.csv", ["class", *result.counts],
                  ([name, *(result.counts[s][name] for s in result.counts)] for name in dataset.class_names))
        write_json(stage.path / "report.json", {
            "dataset": display_path(dataset.root), "classes": list(dataset.class_names), "counts": result.counts,
            "problems": result.problems, "duplicates": result.duplicates, "unreadable": result.unreadable})
        lines = [f"data set: {display_path(dataset.root)}", f"classes: {len(dataset.class_names)}", ""]
        lines += [f"{split}: {sum(c.values())} images" for split, c in result.counts.items()]
        lines += ["", f"{len(result.problems)} problem(s):"] + [f"  {p}" for p in result.problems] + [""]
        atomic_write_text(stage.path / "report.txt", "\n".join(lines))


def _sample_grid(path: Path, dataset: Dataset, samples: list[Sample], split: str, per_class: int) -> None:
    import numpy as np
    from PIL import Image

    from common.plotting import pyplot

    plt = pyplot()
    classes = dataset.class_names
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        if len(by_class.setdefault(sample.label, [])) < per_class:
            by_class[sample.label].append(sample)
    figure, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 1.1, len(classes) * 1.2), dpi=90,
                                squeeze=False)
    for row, name in enumerate(classes):
        for column in range(per_class):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
            members = by_class.get(row, [])
            if column < len(members):
                try:
                    with Image.open(dataset.image_path(members[column])) as opened:
                        axis.imshow(np.asarray(opened.convert("RGB")), interpolation="nearest")
                except OSError:
                    axis.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=6)
            else:
                axis.axis("off")
    figure.suptitle(f"{split}: up to {per_class} images per class (rows = classes)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _count_plot(path: Path, counts: dict[str, dict[str, int]], class_names: Sequence[str]) -> None:
    import numpy as np

    from common.plotting import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(6, 0.5 * len(class_names) * max(1, len(counts)) / 2), 4), dpi=100)
    width = 0.8 / max(1, len(counts))
    positions = np.arange(len(class_names))
    for index, (split, per_class) in enumerate(counts.items()):
        axes.bar(positions + index * width, [per_class[n] for n in class_names], width, label=split)
    axes.set_xticks(positions + width * (len(counts) - 1) / 2, class_names,
                    rotation=90 if len(class_names) > 12 else 0)
    axes.set(ylabel="images", title="Images per class and split")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)



def main(argv: Sequence[str]) -> int:
    """Parse arguments, inspect, print the problems."""
    parser = command_parser("inspect-data", DESCRIPTION)
    parser.add_argument("--dataset", default="digits", help="data set name under data/, or a path (default digits)")
    parser.add_argument("--out", type=Path, help="output folder (default output/inspect/<data set>)")
    parser.add_argument("--per-class", type=int, default=8, help="images per class in the grids (default 8)")
    parser.add_argument("--imbalance", type=float, default=3.0,
                        help="largest/smallest class ratio reported as imbalance (default 3)")
    args = parser.parse_args(argv)
    result = inspect_dataset(args.dataset, args.out, args.per_class, args.imbalance)
    for split, counts in result.counts.items():
        print(f"{split}: {sum(counts.values())} images in {sum(1 for c in counts.values() if c)} classes")
    print(f"{len(result.problems)} problem(s)" + (":" if result.problems else ""))
    for problem in result.problems[:50]:
        print(f"  {problem}")
    print(f"report: {display_path(result.folder / 'report.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""``pipenv run inspect-data``: look at a data set before training on it, and measure its input statistics.

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

import argparse
import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.cli import command_parser, parse_key_values, run_main
from common.contract import COLOR_MODES, INTERPOLATIONS, InputContract
from common.data_profile import ChannelStats, FileProfile, read_header, tiny_split_note
from common.errors import UserError
from common.files import atomic_write_text, write_csv, write_json
from common.images import UnreadableImageError, decode_image, load_thumbnail, to_network_input
from common.lists import Dataset, ListFileError, Sample, open_dataset, read_split
from common.paths import display_path, output_dir
from common.staging import refuse_foreign_target, staged


DESCRIPTION = (
    "Look at a data set before training on it: sample grids, class counts and image formats per split; "
    "problems (list errors, unreadable images, class imbalance, images shared by two splits, shortcuts a "
    "network could learn instead of the content); the train split's per-channel mean and std at a given "
    "size, optionally written as a network config. Output: output/inspect/<data set>/."
)
"""What ``--help`` says the command does."""

EPILOG = """\
examples:
  pipenv run inspect-data --dataset flowers                     report, statistics at 64x64
  pipenv run inspect-data --dataset flowers --size 96 --color-mode RGB
  pipenv run inspect-data --dataset flowers --size 64 --write-network flowers_cnn --arch small_cnn \\
      --params 'channels=[32,64,128]' dropout=0.2               shared_configs/networks/flowers_cnn.yaml
"""

DEV_SPLIT = "dev"
"""The quick-check subset of train; not checked for images shared with other splits."""

STATS_SPLIT = "train"
"""The split whose pixel statistics go into the input contract."""

REPORT = "report.json"
"""The file every inspection folder holds; an existing ``--out`` without it is never replaced."""

GRID_THUMBNAIL = 96
"""Largest side, in pixels, of an image in the sample grids (decoded at reduced scale)."""


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
    dataset = open_dataset(name_or_path)
    splits = sorted(p.stem for p in (dataset.root / "lists").glob("*.txt"))
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
    if per_class < 1:
        raise UserError(f"--per-class: images per class in the grids must be at least 1, got {per_class}")
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
                    thumbnail = load_thumbnail(dataset.image_path(members[column]), GRID_THUMBNAIL)
                    axis.imshow(np.asarray(thumbnail), interpolation="nearest")
                except UnreadableImageError:
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



def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = command_parser("inspect-data", DESCRIPTION, EPILOG)
    parser.add_argument("--dataset", default="digits", help="data set name under data/, or a path (default digits)")
    parser.add_argument("--out", type=Path, help="output folder (default output/inspect/<data set>)")
    parser.add_argument("--per-class", type=int, default=8, help="images per class in the grids (default 8)")
    parser.add_argument("--imbalance", type=float, default=3.0,
                        help="largest/smallest class ratio reported as imbalance (default 3)")
    stats = parser.add_argument_group("input statistics (train split, as the network sees it)")
    stats.add_argument("--size", type=parse_size, default=None, metavar="H[xW]",
                       help="network input size, e.g. 64 or 96x128 (default 64; for a pretrained timm model its "
                       "pretrained size)")
    stats.add_argument("--color-mode", choices=sorted(COLOR_MODES),
                       help="L or RGB (default: RGB when any file is in colour, else L)")
    stats.add_argument("--interpolation", choices=INTERPOLATIONS, default="bilinear",
                       help="resize filter (default bilinear)")
    network = parser.add_argument_group("network config")
    network.add_argument("--write-network", metavar="NAME",
                         help="write shared_configs/networks/NAME.yaml (or a .yaml path) with the measured input "
                         "contract and the data set's class count")
    network.add_argument("--arch", help="with --write-network: a registered architecture, e.g. small_cnn")
    network.add_argument("--params", nargs="+", default=[], metavar="KEY=VALUE",
                         help="with --write-network: the architecture's parameters, values in YAML, "
                         "e.g. 'channels=[32,64]' dropout=0.2")
    network.add_argument("--pretrained", metavar="FILE",
                         help="with --write-network: a weights file in model/ that training starts from")
    network.add_argument("--overwrite", action="store_true", help="with --write-network: replace an existing config")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` -> ``(64, 64)``; ``"96x128"`` -> ``(96, 128)`` (height x width)."""
    parts = text.lower().split("x")
    try:
        height, width = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use H or HxW, e.g. 64 or 96x128")
    return height, width


def main(argv: Sequence[str]) -> int:
    """Parse arguments, inspect, print the findings; write a network config when asked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.write_network) != bool(args.arch):
        parser.error("--write-network and --arch go together")
    if (args.params or args.overwrite or args.pretrained) and not args.write_network:
        parser.error("--params, --pretrained and --overwrite apply with --write-network")
    params = parse_key_values(args.params, "--params")
    if args.write_network:
        check_network_request(args.write_network, args.arch, params, args.overwrite)
    height, width = args.size or (64, 64)
    stats = StatsSettings(height, width, args.color_mode, args.interpolation)
    result = inspect_dataset(args.dataset, args.out, args.per_class, args.imbalance, stats)
    lines = summary_lines(result)
    print("\n".join(lines[:60] + (["  ... and more in the report"] if len(lines) > 60 else [])))
    print(f"report: {display_path(result.folder / 'report.txt')}")
    if args.write_network:
        request = NetworkRequest(args.write_network, args.arch, params, args.overwrite, args.pretrained, args.size)
        print(write_network(result, args.dataset, request))
    return 0


def check_network_request(name: str, arch: str, params: dict[str, Any], overwrite: bool) -> None:
    """Refuse a ``--write-network`` that would fail, before the (possibly long) inspection.

    Raises:
        UserError: When the config exists (without ``overwrite``), or the
            architecture is unknown or does not take ``params``.
    """
    from networks.config import EXISTS_HINT, ArchConfig, NetworkConfig, network_config_path  # torch: workstation only
    from networks.registry import check_network

    path = network_config_path(name)
    if path.exists() and not overwrite:
        raise UserError(f"{display_path(path)} already exists; {EXISTS_HINT}")
    placeholder = InputContract("L", 1, 1, "bilinear", (0.5,), (0.5,))  # the real one is measured later
    check_network(NetworkConfig(name=path.stem, arch=ArchConfig(arch, dict(params)), num_classes=2, input=placeholder))


@dataclass(frozen=True)
class NetworkRequest:
    """What ``--write-network`` asks for.

    Attributes:
        name: The config's name (or a ``.yaml`` path).
        arch: The registered architecture.
        params: Its parameters.
        overwrite: Replace an existing config.
        pretrained: A weights file in ``model/`` that training starts from, or None.
        size: ``(height, width)`` given on the command line, or None.
    """

    name: str
    arch: str
    params: dict[str, Any]
    overwrite: bool = False
    pretrained: str | None = None
    size: tuple[int, int] | None = None


def write_network(result: Inspection, dataset: str, request: NetworkRequest) -> str:
    """Write the network config for an inspected data set; returns what to tell the user.

    The input contract is the measured one, except for an architecture that knows
    the contract of its pretrained weights (a timm model: size, interpolation, mean
    and std of its pretrained config; ``--size`` still chooses the size).

    Raises:
        UserError: When there are no statistics, the config exists (without
            ``overwrite``), or the architecture or its parameters are refused.
    """
    if result.contract is None:
        raise UserError(f"--write-network: no statistics were measured ({'; '.join(result.notes)}); nothing written")
    from networks.config import network_config_path, write_network_config  # torch: the full workstation only
    from networks.registry import registered

    path = network_config_path(request.name)
    suggest = getattr(registered(request.arch), "suggested_contract", None)
    contract, source = result.contract, (f"input statistics measured on {result.stats_images} {STATS_SPLIT} images "
                                         "at the size and colour mode below")
    if suggest is not None:
        contract = suggest(request.params, result.contract.color_mode)
        if request.size:
            contract = replace(contract, height=request.size[0], width=request.size[1])
        source = f"input contract of the pretrained weights of {request.params}"
    header = f"Written by `pipenv run inspect-data --dataset {dataset}`: {source}."
    config = write_network_config(path, request.arch, request.params, len(result.class_names), contract,
                                  header=header, overwrite=request.overwrite, pretrained=request.pretrained)
    recipe = "finetune" if request.pretrained else "photos"
    return (f"wrote {display_path(path)} ({config.arch.name}, {config.num_classes} classes, "
            f"{config.input.color_mode} {config.input.height}x{config.input.width})\n"
            f"next: pipenv run train --config train/configs/{recipe}.yaml network={request.name} "
            f"data.dataset={dataset}")


if __name__ == "__main__":
    sys.exit(run_main(main))

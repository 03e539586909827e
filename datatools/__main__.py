"""The data tools' command line: ``python -m datatools prepare|inspect|review``.

``pipenv run prepare-data`` (``prepare``; its first word may be ``apply`` or ``history``),
``inspect-data`` (``inspect``) and ``review`` (``review``).

Only the standard library and :mod:`common.cli` are imported here at load time, so
``--help`` answers at once; each command imports its work when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import Command, command_parser, dispatch, parse_key_values, run_main

if TYPE_CHECKING:
    from datatools.grow import AddResult
    from datatools.importer import ImportResult
    from datatools.inspect import Inspection
    from networks.writer import NetworkRequest

PREPARE_EPILOG = """\
examples:
  pipenv run prepare-data                                        the bundled digits -> data/digits/
  pipenv run prepare-data --from-folder ~/photos --name flowers  ~/photos/<class>/... -> data/flowers/
  pipenv run prepare-data --from-csv labels.csv --name flowers   rows file,label[,split] -> data/flowers/
  pipenv run prepare-data --from-folder ~/photos --name flowers --link symlink --val 0.15 --test 0.15
  pipenv run prepare-data --from-folder ~/new_photos --add-to flowers  new images, a new list version
  pipenv run prepare-data --from-list to_label.txt --add-to flowers    labelled images from predict --rank
  pipenv run prepare-data apply output/review/<review>/decisions.csv   apply a review's decisions
  pipenv run prepare-data history --dataset flowers                    every version of the lists
"""

INSPECT_DESCRIPTION = (
    "Look at a data set before training on it: sample grids, class counts and image formats per split; "
    "problems (list errors, unreadable images, class imbalance, images shared by two splits, shortcuts a "
    "network could learn instead of the content); the train split's per-channel mean and std at a given "
    "size, optionally written as a network config. Output: output/inspect/<data set>/."
)

INSPECT_EPILOG = """\
examples:
  pipenv run inspect-data --dataset flowers                     report, statistics at 64x64
  pipenv run inspect-data --dataset flowers --size 96 --color-mode RGB
  pipenv run inspect-data --dataset flowers --size 64 --write-network flowers_cnn --arch small_cnn \\
      --params 'channels=[32,64,128]' dropout=0.2               shared_configs/networks/flowers_cnn.yaml
"""

SHOWN_LEFT_OUT = 20
"""How many left-out files an import prints (all are in prepare.json)."""


def prepare_parser() -> argparse.ArgumentParser:
    """``prepare-data``: the digits, or an import through any registered reader (``--from-<reader>``)."""
    from common.splits import DEV_PER_CLASS, TEST_FRACTION, VAL_FRACTION
    from datatools.readers import READERS

    parser = command_parser(
        "prepare-data", epilog=PREPARE_EPILOG,
        description="Write scikit-learn's digits as image files, classes.txt and train/val/test/dev list files "
        "(safe to re-run: an identical folder is left alone), or make a data set from your images with "
        "--from-<format> (one option per registered reader: " + ", ".join(READERS.names()) + ").")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the stratified split (default: 0; with --add-to: the data set's own)")
    digits = parser.add_argument_group("the bundled digits")
    digits.add_argument("--out", type=Path, default=None, help="data set folder (default: data/digits)")
    digits.add_argument("--force", action="store_true",
                        help="replace a different existing folder; the old one is kept as <folder>.replaced-<time>")
    imports = parser.add_argument_group("your own images (datatools/readers/: one module per format)")
    for name in READERS.names():
        imports.add_argument(f"--from-{name}", type=Path, metavar="PATH", dest=f"from_{name.replace('-', '_')}",
                             help=READERS.get(name).option_help)
    imports.add_argument("--reader-option", nargs="+", default=[], metavar="KEY=VALUE",
                         help="options of the format's reader, values in YAML (e.g. delimiter=';' for --from-csv)")
    imports.add_argument("--name", help="the new data set's name: it is written to data/<name>/ (never overwritten)")
    imports.add_argument("--add-to", metavar="DATASET",
                         help="add the images to this existing data set instead (name under data/, or a path): a "
                         "new version of its lists; existing images never move")
    imports.add_argument("--into-test", action="store_true",
                         help="with --add-to: let new images into the test split (frozen otherwise)")
    imports.add_argument("--link", choices=("copy", "symlink", "hardlink"),
                         help="how images reach data/<name>/raw/: copy (default), symlink to the originals, or "
                         "hardlink (same file system); originals are never moved")
    imports.add_argument("--val", type=float, metavar="FRACTION",
                         help=f"share of the images in val (default {VAL_FRACTION}), where the source assigns none")
    imports.add_argument("--test", type=float, metavar="FRACTION",
                         help=f"share of the images in test (default {TEST_FRACTION}), where the source assigns none")
    imports.add_argument("--dev-per-class", type=int, metavar="N",
                         help=f"training images per class in the dev split (default {DEV_PER_CLASS})")
    return parser


def prepare(argv: Sequence[str]) -> int | None:
    """``prepare-data``: ``apply`` and ``history`` by their first word; else write the digits or import a source."""
    return dispatch(argv, PREPARE_COMMANDS, "datatools prepare")


def prepare_data(argv: Sequence[str]) -> int:
    """``prepare-data`` without a first word: parse, then write the digits, import a source, or add to a data set."""
    parser = prepare_parser()
    args = parser.parse_args(argv)
    from datatools.readers import READERS

    sources = {name: getattr(args, f"from_{name.replace('-', '_')}") for name in READERS.names()}
    chosen = {name: path for name, path in sources.items() if path is not None}
    if len(chosen) > 1:
        parser.error(f"{' and '.join(f'--from-{n}' for n in chosen)}: one source at a time")
    if chosen and args.add_to:
        return _add(parser, args, *next(iter(chosen.items())))
    if chosen:
        return _import(parser, args, *next(iter(chosen.items())))
    given = [o for o, v in {"--name": args.name, "--link": args.link, "--val": args.val, "--test": args.test,
                            "--dev-per-class": args.dev_per_class, "--reader-option": args.reader_option or None,
                            "--add-to": args.add_to, "--into-test": args.into_test or None}.items() if v is not None]
    if given:
        parser.error(f"{', '.join(given)}: only with a source to import: "
                     + " or ".join(f"--from-{name}" for name in READERS.names()))
    from common.digits import prepare_digits
    from common.paths import display_path

    result = prepare_digits(args.out, seed=args.seed or 0, force=args.force)
    sizes = ", ".join(f"{name} {count}" for name, count in result.split_sizes.items())
    where = display_path(result.root)
    if result.action == "unchanged":
        print(f"{where} is already up to date ({sizes}).")
    elif result.action == "replaced":
        print(f"Replaced {where} ({sizes}); the previous folder is now {display_path(result.backup)}.")
    else:
        print(f"Wrote {where} ({sizes}).")
    return 0


def _import(parser: argparse.ArgumentParser, args: argparse.Namespace, reader: str, source: Path) -> int:
    """Import ``source`` with ``reader`` into ``data/<--name>/`` and print what happened."""
    from common.cli import check_plain_name
    from common.paths import data_dir
    from common.splits import DEV_PER_CLASS, TEST_FRACTION, VAL_FRACTION
    from datatools.importer import SplitSettings, import_dataset

    if args.into_test:
        parser.error("--into-test applies with --add-to")
    if not args.name:
        parser.error(f"--from-{reader} needs --name (the data set is written to data/<name>/), or --add-to <data set>")
    if args.out is not None or args.force:
        parser.error(f"--out and --force are for the bundled digits; with --from-{reader} use --name")
    check_plain_name(args.name)
    settings = SplitSettings(args.seed or 0, VAL_FRACTION if args.val is None else args.val,
                             TEST_FRACTION if args.test is None else args.test,
                             DEV_PER_CLASS if args.dev_per_class is None else args.dev_per_class)
    options = parse_key_values(args.reader_option, "--reader-option")
    result = import_dataset(reader, source, data_dir() / args.name, args.link or "copy", settings, options)
    print(describe_import(result))
    return 0


def _add(parser: argparse.ArgumentParser, args: argparse.Namespace, reader: str, source: Path) -> int:
    """Add ``source``'s images to the data set ``--add-to`` names and print what happened."""
    from common.lists import dataset_root
    from datatools.grow import AddSettings, add_to_dataset

    if args.name or args.out is not None or args.force or args.dev_per_class is not None:
        parser.error("--add-to adds to an existing data set: --name, --out, --force and --dev-per-class do not apply")
    settings = AddSettings(args.seed, args.val, args.test, args.into_test)
    options = parse_key_values(args.reader_option, "--reader-option")
    result = add_to_dataset(reader, source, dataset_root(args.add_to), args.link or "copy", settings, options)
    print(describe_addition(result))
    return 0


def describe_addition(result: AddResult) -> str:
    """What an addition (a :class:`datatools.grow.AddResult`) did, for the console."""
    from common.paths import display_path

    added = ", ".join(f"{count} to {split}" for split, count in result.added.items()) or "nothing"
    version = (", ".join(f"{split} v{entry['version']}" for split, entry in result.change.lists.items())
               if result.change else "unchanged")
    lines = [f"{display_path(result.root)}: added {added}; lists now {version}."]
    for title, entries in (("already in the data set, not added", [f"{e.path}: {e.reason}" for e in
                                                                   result.already_there]),
                           ("near-duplicates (added; check them)", list(result.near_duplicates)),
                           ("left out", [f"{e.path}: {e.reason}" for e in result.left_out])):
        if entries:
            lines.append(f"{len(entries)} {title}:")
            lines += [f"  {entry}" for entry in entries[:SHOWN_LEFT_OUT]]
            lines += [f"  ... and {len(entries) - SHOWN_LEFT_OUT} more"] if len(entries) > SHOWN_LEFT_OUT else []
    return "\n".join(lines)


APPLY_DESCRIPTION = ("Apply a review's decisions (the action column of its decisions.csv: relabel:<class>, remove, "
                     "keep) to the data set's lists, as a new version of each list that changes. Every row is "
                     "checked first (each problem with its line); decisions for lists that changed since the review "
                     "are refused. Images are never deleted from raw/.")


def apply_command(argv: Sequence[str]) -> int:
    """``prepare-data apply DECISIONS``."""
    parser = command_parser("prepare-data apply", APPLY_DESCRIPTION)
    parser.add_argument("decisions", type=Path, help="the review's decisions.csv, its action column filled in")
    parser.add_argument("--dataset", help="the data set (default: the one the review.json beside the file names)")
    parser.add_argument("--dry-run", action="store_true", help="check and say what would change; write nothing")
    args = parser.parse_args(argv)
    from common.paths import display_path
    from datatools.apply import apply_decisions

    result = apply_decisions(args.decisions, args.dataset, args.dry_run)
    counts = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    if result.change is None:
        print(f"{display_path(result.root)}: {counts}; " + ("would change " + ", ".join(
            f"{s} ({n} samples)" for s, n in result.lists.items()) if result.lists else "no list changes"))
        return 0
    versions = ", ".join(f"{split} v{e['previous']} -> v{e['version']} ({e['samples']} samples)"
                         for split, e in result.change.lists.items())
    print(f"{display_path(result.root)}: {counts}; {versions}; recorded as change {result.change.change} in "
          f"{display_path(result.root / 'lists' / 'CHANGES.jsonl')}")
    return 0


def history_command(argv: Sequence[str]) -> int:
    """``prepare-data history``: every version of a data set's lists; hand edits are recorded first."""
    parser = command_parser("prepare-data history", "Show every change of a data set's lists (its list versions), "
                            "recording first any list edited by hand since (noticed by its sha256).")
    parser.add_argument("--dataset", default="digits", help="data set name under data/, or a path (default digits)")
    parser.add_argument("--images", action="store_true", help="also list every image each change touched")
    args = parser.parse_args(argv)
    from common.list_versions import read_history, record_noticed
    from common.lists import open_dataset
    from common.provenance import command_text

    dataset = open_dataset(args.dataset)
    record_noticed(dataset.root, command_text())
    for change in read_history(dataset.root).changes:
        lists = ", ".join(f"{split} v{e['version']} ({e.get('samples', '?')})" for split, e in change.lists.items())
        counts = ", ".join(f"{name} {count}" for name, count in change.counts.items())
        print(f"{change.change:>3}  {change.time}  {change.kind:<10} {lists}; {counts}; {change.reason}")
        print(f"     {change.command}")
        for image in change.images if args.images else []:
            print(f"     {image['change']} {image['path']}: {image.get('from')} -> {image.get('to')} ({image['why']})")
    return 0


def describe_import(result: ImportResult) -> str:
    """What an import (a :class:`datatools.importer.ImportResult`) wrote and left out, for the console."""
    from common.paths import display_path

    sizes = ", ".join(f"{name} {count}" for name, count in result.split_sizes.items())
    counts = ", ".join(f"{name} {count}" for name, count in result.class_counts.items())
    lines = [f"Wrote {display_path(result.root)}: {sum(result.class_counts.values())} images of "
             f"{len(result.class_counts)} classes ({counts}); splits {sizes}."]
    if result.left_out:
        lines.append(f"{len(result.left_out)} file(s) left out (all listed in "
                     f"{display_path(result.root / 'prepare.json')}):")
        lines += [f"  {entry.path}: {entry.reason}" for entry in result.left_out[:SHOWN_LEFT_OUT]]
        if len(result.left_out) > SHOWN_LEFT_OUT:
            lines.append(f"  ... and {len(result.left_out) - SHOWN_LEFT_OUT} more")
    lines.append(f"Next: pipenv run inspect-data --dataset {result.root.name}")
    return "\n".join(lines)


def inspect_parser() -> argparse.ArgumentParser:
    """``inspect-data``."""
    from common.contract import COLOR_MODES, INTERPOLATIONS

    parser = command_parser("inspect-data", INSPECT_DESCRIPTION, INSPECT_EPILOG)
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
    network = parser.add_argument_group("network config (needs the workstation: the network registry)")
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
    from common.limits import MAX_PIXELS

    if height * width > MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"{text!r}: {height * width:,} pixels, more than the {MAX_PIXELS:,} the "
                                         "decoder reads in one image")
    return height, width


def inspect(argv: Sequence[str]) -> int:
    """``inspect-data``: inspect, print the findings; write a network config when asked."""
    parser = inspect_parser()
    args = parser.parse_args(argv)
    if bool(args.write_network) != bool(args.arch):
        parser.error("--write-network and --arch go together")
    if (args.params or args.overwrite or args.pretrained) and not args.write_network:
        parser.error("--params, --pretrained and --overwrite apply with --write-network")
    from common.paths import display_path
    from datatools.inspect import StatsSettings, inspect_dataset, summary_lines

    request = None
    if args.write_network:
        from networks.writer import NetworkRequest, check_network_request  # the registry: the workstation only

        request = NetworkRequest(args.write_network, args.arch, parse_key_values(args.params, "--params"),
                                 args.overwrite, args.pretrained, args.size)
        check_network_request(request)
    height, width = args.size or (64, 64)
    stats = StatsSettings(height, width, args.color_mode, args.interpolation)
    result = inspect_dataset(args.dataset, args.out, args.per_class, args.imbalance, stats)
    lines = summary_lines(result)
    print("\n".join(lines[:60] + (["  ... and more in the report"] if len(lines) > 60 else [])))
    print(f"report: {display_path(result.folder / 'report.txt')}")
    if request is not None:
        print(write_network(result, args.dataset, request))
    return 0


def write_network(result: Inspection, dataset: str, request: NetworkRequest) -> str:
    """Write the requested network config from an inspection's measured contract; returns the message.

    Raises:
        UserError: When no statistics were measured, or the writer refuses the request.
    """
    from common.errors import UserError
    from datatools.inspect import STATS_SPLIT
    from networks.writer import write_requested_network

    if result.contract is None:
        raise UserError(f"--write-network: no statistics were measured ({'; '.join(result.notes)}); nothing written")
    measured_on = f"input statistics measured on {result.stats_images} {STATS_SPLIT} images at the size and colour " \
                  "mode below"
    return write_requested_network(request, result.contract, len(result.class_names), measured_on, dataset)


REVIEW_DESCRIPTION = (
    "Find the images of a data set that need a decision: likely label errors (cleanlab, on out-of-sample "
    "probabilities: a cross-validation of train, evaluations of val and test; in-sample ones are refused), exact "
    "and near-duplicate images within and across lists (leaks first), unreadable and odd files. Writes "
    "output/review/<data set>-<time>/: review.html, decisions.csv (fill its action column, then "
    "pipenv run prepare-data apply <decisions.csv>) and review.json. Changes nothing in the data set.")

REVIEW_EPILOG = """\
examples:
  pipenv run review --dataset digits                             the newest cross-validation of its train list
  pipenv run review --dataset flowers --probabilities output/crossval/flowers-cv5-s0 output/eval/m-val output/eval/m-test
"""


def review(argv: Sequence[str]) -> int:
    """``review``: review a data set and print where the report and the decisions file are."""
    from datatools.review.duplicates import MAX_DISTANCE, MIN_SIMILARITY

    parser = command_parser("review", REVIEW_DESCRIPTION, REVIEW_EPILOG)
    parser.add_argument("--dataset", default="digits", help="data set name under data/, or a path (default digits)")
    parser.add_argument("--probabilities", nargs="+", type=Path, default=[], metavar="FOLDER",
                        help="cross-validation or evaluation folders (or their predictions.csv) holding out-of-sample "
                        "probabilities (default: the newest cross-validation of the current train list)")
    parser.add_argument("--out", type=Path, help="review folder (default output/review/<data set>-<time>)")
    parser.add_argument("--max-distance", type=int, default=MAX_DISTANCE,
                        help=f"near-duplicates: largest perceptual-hash distance, 0..64 (default {MAX_DISTANCE})")
    parser.add_argument("--min-similarity", type=float, default=MIN_SIMILARITY,
                        help=f"near-duplicates: smallest 16x16 gray correlation (default {MIN_SIMILARITY})")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (default: one per core)")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers must be at least 0")
    from common.paths import display_path
    from datatools.review import ReviewOptions, review_dataset

    result = review_dataset(ReviewOptions(args.dataset, tuple(args.probabilities), args.out, args.max_distance,
                                          args.min_similarity, args.workers))
    counts = result.record.counts
    found = ", ".join(f"{counts[kind]} {kind.replace('_', ' ')}" for kind in
                      ("cross_split_duplicate", "unreadable", "label_issue", "duplicate", "odd_file"))
    print(f"{len(result.findings)} findings in {counts['images']} images ({found}); labels checked for "
          f"{counts['with_probabilities']}")
    for note in result.record.notes:
        print(f"note: {note}")
    print(f"report: {display_path(result.folder / 'review.html')}")
    print(f"decide in {display_path(result.folder / 'decisions.csv')}, then: pipenv run prepare-data apply "
          f"{display_path(result.folder / 'decisions.csv')}")
    return 0


PREPARE_COMMANDS = (
    Command(None, prepare_data, "write the bundled digits, import a source, or add one to a data set"),
    Command("apply", apply_command, "apply a review's decisions.csv: new versions of the lists"),
    Command("history", history_command, "every version of a data set's lists"),
)

COMMANDS = (
    Command("prepare", prepare, "write the bundled digits, or make a data set from your images (prepare-data)"),
    Command("inspect", inspect, "look at a data set and measure its input statistics (inspect-data)"),
    Command("review", review, "find label errors, duplicates and odd files in a data set (review)"),
)


def main(argv: Sequence[str]) -> int | None:
    """Run the data command the first argument names."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return dispatch(argv, COMMANDS, "datatools")


if __name__ == "__main__":
    sys.exit(run_main(main))

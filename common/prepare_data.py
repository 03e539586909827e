"""``pipenv run prepare-data``: write the bundled digits, or make a data set from a folder of your images."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import command_parser, run_main
from common.digits import default_digits_root, prepare_digits
from common.folder_import import LINK_MODES, ImportResult, SplitSettings, import_folder
from common.paths import data_dir, display_path
from common.splits import DEV_PER_CLASS, TEST_FRACTION, VAL_FRACTION

EPILOG = """\
examples:
  pipenv run prepare-data                                        the bundled digits -> data/digits/
  pipenv run prepare-data --from-folder ~/photos --name flowers  ~/photos/<class>/... -> data/flowers/
  pipenv run prepare-data --from-folder ~/photos --name flowers --link symlink --val 0.15 --test 0.15
"""

SHOWN_LEFT_OUT = 20
"""How many left-out files the import prints (all are in prepare.json)."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = command_parser(
        "prepare-data",
        description="Write scikit-learn's digits as image files, classes.txt and train/val/test/dev list files "
        "(safe to re-run: an identical folder is left alone), or, with --from-folder, make a data set from a "
        "folder holding one subfolder of images per class.",
        epilog=EPILOG)
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified split (default: 0)")
    digits = parser.add_argument_group("the bundled digits")
    digits.add_argument("--out", type=Path, default=None,
                        help=f"data set folder (default: {display_path(default_digits_root())})")
    digits.add_argument("--force", action="store_true",
                        help="replace a different existing folder; the old one is kept as <folder>.replaced-<time>")
    folder = parser.add_argument_group("your own images (one subfolder per class, nested folders allowed)")
    folder.add_argument("--from-folder", type=Path, metavar="DIR", help="the folder of class folders")
    folder.add_argument("--name", help="the new data set's name: it is written to data/<name>/ (never overwritten)")
    folder.add_argument("--link", choices=LINK_MODES,
                        help="how images reach data/<name>/raw/: copy (default), symlink to the originals, or "
                        "hardlink (same file system); originals are never moved")
    folder.add_argument("--val", type=float, metavar="FRACTION",
                        help=f"share of the images in val (default {VAL_FRACTION})")
    folder.add_argument("--test", type=float, metavar="FRACTION",
                        help=f"share of the images in test (default {TEST_FRACTION})")
    folder.add_argument("--dev-per-class", type=int, metavar="N",
                        help=f"training images per class in the dev split (default {DEV_PER_CLASS})")
    return parser


def main(argv: Sequence[str]) -> int:
    """Parse arguments and prepare the digits, or import a folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    folder_options = {"--name": args.name, "--link": args.link, "--val": args.val, "--test": args.test,
                      "--dev-per-class": args.dev_per_class}
    if args.from_folder is not None:
        if not args.name:
            parser.error("--from-folder needs --name (the data set is written to data/<name>/)")
        if args.out is not None or args.force:
            parser.error("--out and --force are for the bundled digits; with --from-folder use --name")
        if Path(args.name).name != args.name or args.name.startswith("."):
            parser.error(f"--name {args.name!r}: a plain folder name, e.g. flowers")
        settings = SplitSettings(args.seed, VAL_FRACTION if args.val is None else args.val,
                                 TEST_FRACTION if args.test is None else args.test,
                                 DEV_PER_CLASS if args.dev_per_class is None else args.dev_per_class)
        print(describe_import(import_folder(args.from_folder, data_dir() / args.name, args.link or "copy",
                                            settings)))
        return 0
    given = [option for option, value in folder_options.items() if value is not None]
    if given:
        parser.error(f"{', '.join(given)}: only with --from-folder")
    result = prepare_digits(args.out, seed=args.seed, force=args.force)
    sizes = ", ".join(f"{name} {count}" for name, count in result.split_sizes.items())
    where = display_path(result.root)
    if result.action == "unchanged":
        print(f"{where} is already up to date ({sizes}).")
    elif result.action == "replaced":
        print(f"Replaced {where} ({sizes}); the previous folder is now {display_path(result.backup)}.")
    else:
        print(f"Wrote {where} ({sizes}).")
    return 0


def describe_import(result: ImportResult) -> str:
    """What an import wrote and left out, for the console."""
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


if __name__ == "__main__":
    sys.exit(run_main(main))

"""``pipenv run prepare-data``: write the bundled digits data set to ``data/digits/``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import command_parser, run_main
from common.digits import default_digits_root, prepare_digits
from common.paths import display_path


def main(argv: Sequence[str]) -> int:
    """Parse arguments and prepare the digits data set."""
    parser = command_parser(
        "prepare-data",
        description="Write scikit-learn's digits as image files, classes.txt and "
        "train/val/test/dev list files. Safe to re-run: an identical folder is left alone.",
    )
    parser.add_argument("--out", type=Path, default=None,
                        help=f"data set folder (default: {display_path(default_digits_root())})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified split (default: 0)")
    parser.add_argument("--force", action="store_true",
                        help="replace a different existing folder; the old one is kept as <folder>.replaced-<time>")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(run_main(main))

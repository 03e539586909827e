"""``pipenv run pack``: decode a data set once, at a network's input size, into a pack training reads directly.

::

    pipenv run pack --dataset flowers --network flowers_resnet18     every split in data/flowers/lists/
    pipenv run pack --dataset flowers --network flowers_resnet18 --splits train val

The pack goes to ``data/<ds>/packs/<color mode>-<height>x<width>-<interpolation>/``
(format and checks: :mod:`common.packs`). Training then uses it (``data.pack=auto``,
the default): a second run starts training at once instead of decoding every image
again, every DDP rank reads the same files, and ``data.in_memory=false`` reads
batches from it with memory bounded by the batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common.cli import command_parser, run_main
from common.errors import UserError
from common.lists import open_dataset
from common.packs import write_pack
from common.paths import display_path

DESCRIPTION = ("Decode every listed image of a data set once, at a network's input contract, into a pack "
               "(numpy .npy arrays and an index) that training reads directly.")
"""What ``--help`` says the command does."""


def pack(dataset: str, network: str, splits: Sequence[str] = (), on_unreadable: str = "error", workers: int = 0,
         progress: bool = True) -> Path:
    """Pack a data set's splits for a network's input contract.

    Args:
        dataset: A data set under the data folder, or its path.
        network: A shared network config name or path (its input contract decides the pack).
        splits: Splits to pack (default: every list file of the data set).
        on_unreadable: ``error`` or ``skip``.
        workers: Decoding threads (0: one per CPU core).
        progress: Show a progress bar.

    Returns:
        The pack folder.

    Raises:
        UserError: For a missing data set, network config or split, or unreadable images under ``error``.
    """
    from tqdm import tqdm

    from networks.config import load_network_config

    data = open_dataset(dataset)
    contract = load_network_config(network).input
    available = sorted(p.stem for p in (data.root / "lists").glob("*.txt"))
    chosen = list(splits) or available
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise UserError(f"--splits: no list file for {missing} in {display_path(data.root / 'lists')}; "
                        f"available: {available}")
    with tqdm(unit="img", desc="pack", disable=None if progress else True) as bar:
        return write_pack(data, contract, chosen, on_unreadable, workers, progress=bar.update)


def main(argv: Sequence[str]) -> int:
    """Parse the command line and pack."""
    parser = command_parser("pack", DESCRIPTION)
    parser.add_argument("--dataset", required=True, help="data set name under data/, or its path")
    parser.add_argument("--network", required=True, help="shared network config (name or path): its input contract")
    parser.add_argument("--splits", nargs="+", default=[], help="splits to pack (default: every list file)")
    parser.add_argument("--on-unreadable", choices=["error", "skip"], default="error",
                        help="stop at an unreadable image (default) or leave it out (recorded in the index)")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers must be at least 0")
    started = time.perf_counter()
    folder = pack(args.dataset, args.network, args.splits, args.on_unreadable, args.workers, not args.no_progress)
    print(f"packed {display_path(folder)} in {time.perf_counter() - started:.1f} s; training uses it with "
          "data.pack=auto (the default)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

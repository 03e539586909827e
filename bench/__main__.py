"""``pipenv run bench <name>``: run one benchmark and print its table."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from common.cli import command_parser, run_main

BENCHMARKS = {"train": "bench.train_loop", "data": "bench.data", "export": "bench.export", "evaluate": "bench.evaluate",
              "predict": "bench.predict", "freshness": "bench.freshness", "checkpoint": "bench.checkpoint"}
"""Benchmark name -> module with ``main(rounds: int) -> int``."""


def main(argv: Sequence[str]) -> int:
    """Parse arguments and run the chosen benchmark."""
    parser = command_parser("bench", "Run a benchmark.")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per contender (default 7)")
    args = parser.parse_args(argv)
    return importlib.import_module(BENCHMARKS[args.name]).main(args.rounds)


if __name__ == "__main__":
    sys.exit(run_main(main))

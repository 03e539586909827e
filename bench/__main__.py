"""``pipenv run bench <name>``: run one benchmark and print its table."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from common.cli import command_parser, run_main
from train.threads import set_openmp_wait

BENCHMARKS = {"train": "bench.train_loop", "data": "bench.data", "export": "bench.export", "evaluate": "bench.evaluate"}
"""Benchmark name -> module with ``main(rounds: int) -> int``."""

TRAINING = ("train", "data")
"""Benchmarks of the training stage: they run under its thread policy, as ``python -m train`` does (train/threads.py)."""


def main(argv: Sequence[str]) -> int:
    """Parse arguments and run the chosen benchmark."""
    parser = command_parser("bench", "Run a benchmark.")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per contender (default 7)")
    args = parser.parse_args(argv)
    if args.name in TRAINING:
        set_openmp_wait()  # before the benchmark's module loads torch
    return importlib.import_module(BENCHMARKS[args.name]).main(args.rounds)


if __name__ == "__main__":
    sys.exit(run_main(main))

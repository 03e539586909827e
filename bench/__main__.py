"""``pipenv run bench <name>``: run one benchmark and print its table."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from common.cli import command_parser, run_main
from train.process.threads import set_openmp_wait

BENCHMARKS = {"train": "bench.train_loop", "data": "bench.data", "export": "bench.export", "evaluate": "bench.evaluate",
              "predict": "bench.predict", "freshness": "bench.freshness", "checkpoint": "bench.checkpoint",
              "review": "bench.review", "studio": "bench.studio"}
"""Benchmark name -> module with ``main(rounds: int) -> int`` (``main(rounds, quick)`` for those in :data:`QUICK`)."""

QUICK = ("review", "studio")
"""Benchmarks with a ``--quick`` mode: small settings that only check the benchmark runs."""

TRAINING = ("train", "data")
"""Benchmarks of the training stage: they run under its thread policy, as ``python -m train`` does (train/process/threads.py)."""


def main(argv: Sequence[str]) -> int:
    """Parse arguments and run the chosen benchmark."""
    parser = command_parser("bench", "Run a benchmark.")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--rounds", type=int, default=None,
                        help="measured rounds per contender (default 7; studio: 3; review: noise seeds, default 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small settings that only check the benchmark runs ({', '.join(QUICK)})")
    args = parser.parse_args(argv)
    if args.quick and args.name not in QUICK:
        parser.error(f"--quick: only for {', '.join(QUICK)}")
    if args.name in TRAINING:
        set_openmp_wait()  # before the benchmark's module loads torch
    rounds = args.rounds if args.rounds is not None else {"review": 1, "studio": 3}.get(args.name, 7)
    main = importlib.import_module(BENCHMARKS[args.name]).main
    return main(rounds, quick=True) if args.quick else main(rounds)


if __name__ == "__main__":
    sys.exit(run_main(main))

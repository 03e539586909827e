"""``pipenv run train``: parse the command line and call :func:`train.train` or :func:`train.resume`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import command_parser, run_main

EPILOG = """\
examples:
  pipenv run train                                   default config, bundled digits
  pipenv run train --dev                             same config on the dev split, in seconds
  pipenv run train --config train/configs/digits_resnet.yaml optim.lr=3e-4 epochs=50 --name bigger-lr
  pipenv run train --print-config optim.name=sgd     show the resolved config and exit
  pipenv run train --resume last                     continue the newest run after a crash
  pipenv run train --find-lr                         learning-rate finder: plot and suggestion, no run
  pipenv run train --resume output/train/<run> epochs=60 --allow-change epochs
  pipenv run torchrun --nproc_per_node=2 -m train    DistributedDataParallel on 2 processes
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = command_parser("train", "Train a network; writes output/train/<name>-<time>/.", EPILOG,
                            overrides_help="config overrides with dotted keys, anywhere on the line, "
                            "e.g. optim.lr=3e-4 augment.rotation=10")
    parser.add_argument("--config", type=Path, default=None,
                        help="training config YAML (default: train/configs/default.yaml)")
    parser.add_argument("--name", help="run name prefix (default: the config file's name)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--dev", action="store_true", help="train and validate on the dev split (quick check)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run: its folder, its name, or 'last'")
    parser.add_argument("--allow-change", nargs="+", default=[], metavar="KEY",
                        help="with --resume: config keys the overrides may change (e.g. epochs)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument("--find-lr", action="store_true",
                        help="run the learning-rate finder instead of training (writes output/lr_find/, no run)")
    parser.add_argument("--lr-min", type=float, default=1e-6, help="with --find-lr: first rate (default 1e-6)")
    parser.add_argument("--lr-max", type=float, default=1.0, help="with --find-lr: last rate (default 1)")
    parser.add_argument("--lr-steps", type=int, default=100, help="with --find-lr: steps (default 100)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run the training command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # e.g. "prepared the bundled digits"
    from common.train_config import DEFAULT_CONFIG, config_to_yaml, load_train_config
    from train.loop import RunOptions, resume, train

    if args.allow_change and not args.resume:
        raise_usage("--allow-change only applies with --resume")
    options = RunOptions(name=args.name, device=args.device, dev=args.dev, progress=not args.no_progress)
    if args.resume:
        if args.find_lr:
            raise_usage("--find-lr starts from the config's weights; it does not combine with --resume")
        if args.config or args.dev or args.name:
            raise_usage("--resume continues a run with its own config; --config, --dev and --name do not apply")
        result = resume(args.resume, args.overrides, args.allow_change, options)
    else:
        loaded = load_train_config(args.config or DEFAULT_CONFIG, args.overrides)
        if args.print_config:
            config = loaded.config.for_dev() if args.dev else loaded.config
            print(config_to_yaml(config), end="")
            return 0
        if args.find_lr:
            from train.lr_find import describe, find_lr

            print(describe(find_lr(loaded, options, args.lr_min, args.lr_max, args.lr_steps)))
            return 0
        result = train(loaded, options)
    return 1 if result.status == "diverged" else 0


def raise_usage(message: str) -> None:
    """Stop with a usage error (exit status 2)."""
    build_parser().error(message)


if __name__ == "__main__":
    sys.exit(run_main(main))

"""The training package's command line: ``train``, ``runs``, ``sweep``, ``pack`` and ``crossval``.

``python -m train`` (``pipenv run train``) trains or resumes; ``python -m train runs``,
``sweep``, ``pack`` and ``crossval`` are ``pipenv run runs``, ``sweep``, ``pack`` and
``crossval``. Each parses its own arguments here and calls one importable function
(:func:`train.train`, :func:`train.resume`, :func:`train.experiments.sweep.run_sweep`,
:func:`train.data.packs.pack_dataset`, :func:`train.experiments.crossval.crossval`,
:mod:`train.experiments.runs`); the work is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import Command, command_parser, dispatch, options_from, run_main, spelled_out
from train.process.threads import set_openmp_wait

PROFILE_STEPS = 30
"""Steps ``--profile`` records when no number is given."""

EPILOG = """\
examples:
  pipenv run train                                   default config, bundled digits
  pipenv run train --dev                             same config on the dev split, in seconds
  pipenv run train --config train/configs/digits_resnet.yaml optim.lr=3e-4 epochs=50 --name bigger-lr
  pipenv run train --print-config optim.name=sgd     show the resolved config and exit
  pipenv run train --resume last                     continue the newest run after a crash
  pipenv run train --name flowers --auto-resume      start the run "flowers", or continue it (requeued jobs)
  pipenv run train --name flowers --submit slurm --slurm time=24:00:00   the same, as a Slurm job that requeues itself
  pipenv run train --find-lr                         learning-rate finder: plot and suggestion, no run
  pipenv run train --profile                         where the time goes: 30 steps under torch.profiler, a verdict
  pipenv run train --resume output/train/<run> epochs=60 --allow-change epochs
  pipenv run torchrun --nproc_per_node=2 -m train    DistributedDataParallel on 2 processes
"""


def build_parser() -> argparse.ArgumentParser:
    """``train``."""
    parser = command_parser("train", "Train a network; writes output/train/<name>-<time>/.", EPILOG,
                            overrides_help="config overrides with dotted keys, anywhere on the line, "
                            "e.g. optim.lr=3e-4 augment.rotation=10")
    parser.add_argument("--config", type=Path, default=None,
                        help="training config YAML (default: train/configs/default.yaml)")
    parser.add_argument("--name", help="run name prefix (default: the config file's name)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--dev", action="store_true", help="train and validate on the dev split (quick check)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run: its folder, its name, or 'last'")
    parser.add_argument("--auto-resume", action="store_true",
                        help="with --name: continue the newest unfinished run of that name (same config), start one "
                        "when there is none; a run that ended is not trained again (docs/clusters.md)")
    parser.add_argument("--allow-change", nargs="+", default=[], metavar="KEY",
                        help="with --resume or --auto-resume: config keys that may differ from the run's (e.g. epochs)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument("--find-lr", action="store_true",
                        help="run the learning-rate finder instead of training (writes output/lr_find/, no run)")
    parser.add_argument("--lr-min", type=float, default=1e-6, help="with --find-lr: first rate (default 1e-6)")
    parser.add_argument("--lr-max", type=float, default=1.0, help="with --find-lr: last rate (default 1)")
    parser.add_argument("--lr-steps", type=int, default=100, help="with --find-lr: steps (default 100)")
    parser.add_argument("--profile", nargs="?", type=int, const=PROFILE_STEPS, default=0, metavar="STEPS",
                        help=f"profile STEPS steps (default {PROFILE_STEPS}) after a warm-up with torch.profiler: print "
                        "where the time goes and a verdict, write the trace under the run's profile/, then stop")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op CPU threads (default: the thread policy, docs/training.md#thread-policy)")
    add_submit_options(parser, "with --name: submit this run as a Slurm batch job that requeues itself and "
                       "continues the run (--auto-resume) until it ends (docs/clusters.md)")
    return parser


def add_submit_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--submit slurm``, ``--slurm KEY=VALUE`` and ``--dry-run`` (train, sweep)."""
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--submit", choices=["slurm"], help=help_text)
    cluster.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                         help="with --submit: an sbatch option (time=24:00:00, partition=gpu, gpus-per-node=4, "
                         "nodes=2, ...) or grace=SECONDS, max-restarts=N, processes-per-node=N; repeat for each")
    cluster.add_argument("--dry-run", action="store_true", help="with --submit: print the job script, submit nothing")


def train_command(argv: Sequence[str]) -> int:
    """``train``: train a run, resume one, print the config or find a learning rate; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # e.g. "prepared the bundled digits"
    from train.config import DEFAULT_CONFIG, config_to_yaml, load_train_config
    from train.run import RunOptions, resume, train

    if args.allow_change and not (args.resume or args.auto_resume):
        raise_usage("--allow-change only applies with --resume or --auto-resume")
    if args.auto_resume and (args.resume or args.find_lr or args.print_config):
        raise_usage("--auto-resume starts or continues the run --name names; it does not combine with --resume, "
                    "--find-lr or --print-config")
    if args.profile < 0 or args.threads < 0:
        raise_usage("--profile and --threads take a positive number")
    if args.profile and (args.resume or args.find_lr or args.auto_resume):
        raise_usage("--profile starts a new run; it does not combine with --resume, --auto-resume or --find-lr")
    if args.submit:
        return submit_command(args, argv)
    if args.slurm or args.dry_run:
        raise_usage("--slurm and --dry-run only apply with --submit slurm")
    options = options_from(RunOptions, args, progress=not args.no_progress)
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
            from train.experiments.lr_find import describe, find_lr

            print(describe(find_lr(loaded, options, args.lr_min, args.lr_max, args.lr_steps)))
            return 0
        if args.auto_resume:
            from train.run import auto_resume

            result = auto_resume(loaded, options, args.allow_change)
        else:
            result = train(loaded, options)
    return result.exit_status


def submit_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``train ... --submit slurm``: check the config here, then write and submit the job script."""
    if args.resume or args.find_lr or args.print_config or args.profile:
        raise_usage("--submit slurm submits a run that continues itself (--auto-resume); it does not combine with "
                    "--resume, --find-lr, --print-config or --profile")
    from train.config import DEFAULT_CONFIG, load_train_config
    from train.experiments.slurm_jobs import describe, submit_training

    loaded = load_train_config(args.config or DEFAULT_CONFIG, args.overrides)
    argv = spelled_out(build_parser(), argv)
    print(describe(submit_training(argv, args.name, args.slurm, loaded, args.dry_run)), end="\n" if not
          args.dry_run else "")
    return 0


def raise_usage(message: str) -> None:
    """Stop with a usage error (exit status 2)."""
    build_parser().error(message)


def runs_command(argv: Sequence[str]) -> int:
    """``runs [list] | show RUN | diff A B``."""
    parser = command_parser("runs", "List, show and compare training runs.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="one line per run (the default)")
    show = commands.add_parser("show", help="one run's record")
    show.add_argument("run", help="run folder, its name, or 'last'")
    diff = commands.add_parser("diff", help="config and metric differences of two runs")
    diff.add_argument("a")
    diff.add_argument("b")
    args = parser.parse_args(argv)
    from common.run_folder import find_run
    from train.experiments.runs import format_diff, format_show, format_table, list_records, load_run

    if args.command == "show":
        print(format_show(load_run(find_run(args.run))))
    elif args.command == "diff":
        print(format_diff(load_run(find_run(args.a)), load_run(find_run(args.b))))
    else:
        print(format_table(list_records()))
    return 0


SWEEP_DESCRIPTION = (
    "Hyperparameter search with Optuna: one training run per trial, pruning from validation "
    "metrics, the study in SQLite under output/sweeps/ or any --storage URL. "
    "The space file is described in docs/experiments.md (example: train/configs/space.yaml)."
)


def sweep_command(argv: Sequence[str]) -> int:
    """``sweep``: run (or continue) a hyperparameter search."""
    parser = command_parser("sweep", SWEEP_DESCRIPTION,
                            overrides_help="overrides applied to every trial, anywhere on the line")
    parser.add_argument("--config", type=Path, help="base training config (default train/configs/default.yaml)")
    parser.add_argument("--space", type=Path, required=True, help="search-space YAML")
    parser.add_argument("--trials", type=int, default=20, help="trials to run now (default 20)")
    parser.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe",
                        help="tpe (default), random or grid")
    parser.add_argument("--pruner", choices=("median", "none"), default="median", help="median (default) or none")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite under output/sweeps/)")
    parser.add_argument("--study", help="study name (default <config name>-sweep); reuse it to continue or share")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--dev", action="store_true", help="train every trial on the dev split")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_submit_options(parser, "submit the sweep as a Slurm array of --tasks tasks sharing one study (each runs "
                       "--trials trials; several tasks need a shared --storage, e.g. PostgreSQL: docs/clusters.md)")
    parser.add_argument("--tasks", type=int, default=1, help="with --submit: array tasks (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.trials < 1 or args.tasks < 1:
        parser.error("--trials and --tasks must be at least 1")
    if args.submit:
        from train.config import DEFAULT_CONFIG, load_train_config
        from train.experiments.slurm_jobs import describe, submit_sweep
        from train.experiments.sweep import load_space

        load_train_config(args.config or DEFAULT_CONFIG, args.overrides)  # mistakes found here, not in the job
        load_space(args.space)
        study = args.study or f"{(args.config or Path('default')).stem}-sweep"
        submitted = submit_sweep(spelled_out(parser, argv), study, args.tasks, args.seed, args.slurm, args.dry_run)
        print(describe(submitted), end="\n" if not args.dry_run else "")
        return 0
    if args.slurm or args.dry_run or args.tasks != 1:
        parser.error("--slurm, --tasks and --dry-run only apply with --submit slurm")
    from common.paths import display_path
    from train.experiments.sweep import run_sweep

    result = run_sweep(args.config, args.space, args.trials, args.sampler, args.pruner, args.storage, args.study,
                       args.seed, args.dev, args.device, args.overrides)
    print(f"study {result.study}: {result.counts}")
    if result.best:
        print(f"best trial {result.best['number']}: {result.best['value']:.4f} with {result.best['params']}")
        print(f"  run: {result.best['run_dir']}")
    print(f"summary: {display_path(result.folder / 'summary.json')} (storage {result.storage})")
    return 0


PACK_DESCRIPTION = ("Decode every listed image of a data set once, at a network's input contract, into a pack "
                    "(numpy .npy arrays and an index) that training reads directly.")


def pack_command(argv: Sequence[str]) -> int:
    """``pack``: decode a data set once into a pack."""
    parser = command_parser("pack", PACK_DESCRIPTION)
    parser.add_argument("--dataset", required=True, help="data set name under data/, or its path")
    parser.add_argument("--network", required=True, help="shared network config (name or path): its input contract")
    parser.add_argument("--splits", nargs="+", default=[],
                        help="splits to pack (default: every list file but cross-validation folds)")
    parser.add_argument("--on-unreadable", choices=["error", "skip"], default="error",
                        help="stop at an unreadable image (default) or leave it out (recorded in the index)")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers must be at least 0")
    import time

    from common.paths import display_path
    from train.data.packs import pack_dataset

    started = time.perf_counter()
    folder = pack_dataset(args.dataset, args.network, args.splits, args.on_unreadable, args.workers, not args.no_progress)
    print(f"packed {display_path(folder)} in {time.perf_counter() - started:.1f} s; training uses it with "
          "data.pack=auto (the default)")
    return 0


CROSSVAL_DESCRIPTION = (
    "Out-of-sample probabilities for every training image: k runs, each trained with one fold of the training "
    "list held out (stratified, seeded; the val list unchanged for checkpoint choice), each held-out fold predicted "
    "by its run's best checkpoint. The folds' lists go into the data set (lists/cv<k>-s<seed>-v<version>-f<i>-"
    "train|holdout.txt), the runs into output/train/ (ordinary runs), the out-of-fold predictions.csv into "
    "output/crossval/<name>/ for pipenv run review. Run the same command again to continue after an interruption.")


def crossval_command(argv: Sequence[str]) -> int:
    """``crossval``: cross-validate the training list; print where the out-of-fold probabilities are."""
    parser = command_parser("crossval", CROSSVAL_DESCRIPTION,
                            overrides_help="config overrides applied to every fold's run, e.g. epochs=20")
    parser.add_argument("--config", type=Path, help="training config YAML (default: train/configs/default.yaml)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--name", help="output folder name (default <data set>-cv<folds>-s<seed>-v<list version>)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from common.paths import display_path
    from train.experiments.crossval import CrossvalOptions, crossval

    result = crossval(CrossvalOptions(args.config, tuple(args.overrides), args.folds, args.seed, args.name,
                                      args.device, not args.no_progress))
    print(f"cross-validation: {result.samples} training images predicted out of fold by {len(result.runs)} runs; "
          f"out-of-fold accuracy {result.accuracy:.4f}")
    print(f"probabilities: {display_path(result.folder / 'predictions.csv')}; next: pipenv run review --dataset "
          f"<data set> --probabilities {display_path(result.folder)}")
    return 0


COMMANDS = (
    Command(None, train_command, "train a network, resume a run, print the config, find a learning rate"),
    Command("runs", runs_command, "list, show and compare training runs (pipenv run runs)"),
    Command("sweep", sweep_command, "hyperparameter search with Optuna (pipenv run sweep)"),
    Command("pack", pack_command, "decode a data set once into a pack training reads (pipenv run pack)"),
    Command("crossval", crossval_command, "out-of-fold probabilities of every training image (pipenv run crossval)"),
)


def main(argv: Sequence[str]) -> int | None:
    """Run the command the first argument names (``runs``, ``sweep``, ``pack``, ``crossval``), else train.

    The OpenMP wait policy is applied first, before anything loads torch (train/process/threads.py).
    When another process of a distributed run dies, the survivors say so in one line
    and exit with 1, not with the backend's traceback.
    """
    set_openmp_wait()
    try:
        return dispatch(argv, COMMANDS, "train")
    except RuntimeError as exc:  # under a launcher: another process of the group died
        from train.process.distributed import lost_peer_message

        message = lost_peer_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run_main(main))

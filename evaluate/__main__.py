"""``pipenv run evaluate``: inference + scoring, ``score`` (re-score a result file) or ``compare``.

Only the standard library is imported here, so ``--help`` answers at once; the work
is imported when a command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import Command, command_parser, dispatch, run_main

EPILOG = """\
examples:
  pipenv run evaluate                                  newest model in model/, bundled digits test list
  pipenv run evaluate --model model/<name>.onnx --list data/<ds>/lists/test.txt --name mine
  pipenv run evaluate score output/eval/<name>/predictions.csv
  pipenv run evaluate compare output/eval/<A> output/eval/<B>    is B really better? (McNemar, paired bootstrap)
  pipenv run evaluate --bootstrap 0                    no bootstrap intervals (fastest)
"""


def add_resampling_options(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--seed`` (evaluation, ``score`` and ``compare``)."""
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the images for the 95%% intervals (default 1000; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """Options that shape metrics and reports (shared by evaluation and ``score``)."""
    parser.add_argument("--bad-cases", type=int, default=24, help="cases per bad-case list (default 24)")
    parser.add_argument("--per-pair", type=int, default=3, help="cases per confusion pair (default 3)")
    parser.add_argument("--precision-targets", type=float, nargs="+", default=[0.95, 0.99], metavar="P",
                        help="per-class thresholds reaching these precisions (default 0.95 0.99)")
    parser.add_argument("--recall-targets", type=float, nargs="+", default=[0.95], metavar="R",
                        help="per-class thresholds reaching these recalls (default 0.95)")
    add_resampling_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def build_parser() -> argparse.ArgumentParser:
    """The main command: run a model on a list."""
    parser = command_parser(
        "evaluate", epilog=EPILOG,
        description="Evaluate an ONNX model on a labelled list file with onnxruntime (no torch): predictions, "
                    "metrics, PR curves, confusion matrices and a bad-case report in output/eval/<name>/. "
                    "Other commands: 'score <predictions.csv>', 'compare <A> <B>' (each has --help).",
    )
    parser.add_argument("--model", type=Path, help="ONNX model (default: the newest in model/)")
    parser.add_argument("--list", type=Path, help="list file in <data set>/lists/ (default: digits test list)")
    parser.add_argument("--name", help="output folder name under output/eval/ (default: <model>-<list>)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default 0: one per core)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per inference call (default 256)")
    parser.add_argument("--workers", type=int, default=4, help="image-decoding threads (default 4)")
    parser.add_argument("--on-unreadable", choices=["error", "skip"], default="error",
                        help="stop at an unreadable image (default) or skip it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scoring_options(parser)
    return parser


def build_score_parser() -> argparse.ArgumentParser:
    """``score``: re-score a result file."""
    parser = command_parser("evaluate score", "Re-score a predictions.csv without inference.")
    parser.add_argument("predictions", type=Path, help="an evaluation's predictions.csv")
    parser.add_argument("--out", type=Path, help="output folder (default: the CSV's folder; only derived files "
                                                 "are replaced there)")
    add_scoring_options(parser)
    return parser


def build_compare_parser() -> argparse.ArgumentParser:
    """``compare``: two evaluations of the same list."""
    parser = command_parser("evaluate compare", "Compare two evaluations of the same list: whether B differs from A "
                                                "at 95% (McNemar's exact test on top-1 correctness, a paired "
                                                "bootstrap for macro F1 and AP), metric deltas, overlaid PR curves, "
                                                "flipped samples.")
    parser.add_argument("a", type=Path, help="evaluation folder A (or its name under output/eval/)")
    parser.add_argument("b", type=Path, help="evaluation folder B")
    parser.add_argument("--name", help="output folder name (default: compare-<A>-vs-<B>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_resampling_options(parser)
    return parser


def compare_command(argv: Sequence[str]) -> int:
    """``compare A B``: is B really different from A?"""
    args = build_compare_parser().parse_args(argv)
    from common.paths import display_path
    from evaluate.compare import compare_evaluations

    result = compare_evaluations(args.a, args.b, args.name, args.overwrite, args.bootstrap, args.seed)
    deltas = result.summary["deltas"]
    print(f"accuracy {deltas['accuracy']['a']:.4f} -> {deltas['accuracy']['b']:.4f} "
          f"({deltas['accuracy']['delta']:+.4f}); macro F1 {deltas['macro_f1']['delta']:+.4f}; "
          f"fixed {result.summary['fixed']}, broken {result.summary['broken']}")
    print("\n".join([*result.summary["sentences"], *result.summary["warnings"]]))
    print(f"comparison: {display_path(result.folder / 'compare.html')}")
    return 0


def evaluate_command(argv: Sequence[str], score: bool = False) -> int:
    """Run a model on a list (or, with ``score``, re-score a result file) and print the headline figures."""
    args = (build_score_parser() if score else build_parser()).parse_args(argv)
    from common.paths import display_path
    from evaluate.evaluation import EvaluateOptions, evaluate, rescore

    options = EvaluateOptions(
        bad_cases=args.bad_cases, per_pair=args.per_pair, precision_targets=tuple(args.precision_targets),
        recall_targets=tuple(args.recall_targets), bootstrap=args.bootstrap, seed=args.seed, overwrite=args.overwrite,
        **({} if score else dict(
            model=args.model, list=args.list, name=args.name, threads=args.threads, batch_size=args.batch_size,
            workers=args.workers, on_unreadable=args.on_unreadable, progress=not args.no_progress)),
    )
    result = rescore(args.predictions, args.out, options) if score else evaluate(options)
    metrics = result.metrics
    low, high = metrics["accuracy_interval"]
    print(f"{metrics['samples']} samples: accuracy {metrics['accuracy']:.4f} (95% interval {low:.4f}-{high:.4f}), "
          f"macro F1 {metrics['macro']['f1']:.4f}, macro AP {metrics['macro']['ap']:.4f}, "
          f"micro AP {metrics['micro']['ap']:.4f}, ECE {metrics['calibration']['ece']:.4f}")
    print(f"report: {display_path(result.folder / 'report.html')}")
    return 0


COMMANDS = (
    Command(None, evaluate_command, "run a model on a labelled list and write the evaluation"),
    Command("score", lambda argv: evaluate_command(argv, score=True), "re-score a predictions.csv, no inference"),
    Command("compare", compare_command, "compare two evaluations of the same list"),
)


def main(argv: Sequence[str]) -> int | None:
    """Run the command the first argument names (``score``, ``compare``), else evaluate."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return dispatch(argv, COMMANDS, "evaluate")


if __name__ == "__main__":
    sys.exit(run_main(main))

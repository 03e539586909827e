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

from common.cli import Command, command_parser, dispatch, options_from, run_main

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


def add_image_root_option(parser: argparse.ArgumentParser) -> None:
    """``--image-root`` (``score`` and ``compare``): folders a received evaluation may draw thumbnails from."""
    parser.add_argument("--image-root", type=Path, action="append", default=[], metavar="FOLDER",
                        help="a folder thumbnails may be read from although only the evaluation's files name it: its "
                        "data set folder (evaluation.json's dataset_root) or the source of a --link symlink "
                        "import; repeatable (default: only folders below the data folder)")


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
    add_image_root_option(parser)
    return parser


def build_compare_parser() -> argparse.ArgumentParser:
    """``compare``: two evaluations of the same list."""
    parser = command_parser("evaluate compare", "Compare two evaluations of the same list: whether B differs from A "
                                                "at 95% (McNemar's exact test on top-1 correctness, a paired "
                                                "bootstrap for every bootstrapped figure, such as macro F1), metric "
                                                "deltas, overlaid PR curves, flipped samples.")
    parser.add_argument("a", type=Path, help="evaluation folder A (or its name under output/eval/)")
    parser.add_argument("b", type=Path, help="evaluation folder B")
    parser.add_argument("--name", help="output folder name (default: compare-<A>-vs-<B>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_resampling_options(parser)
    add_image_root_option(parser)
    return parser


def compare_command(argv: Sequence[str]) -> int:
    """``compare A B``: is B really different from A?"""
    args = build_compare_parser().parse_args(argv)
    from common.paths import display_path
    from evaluate.compare import compare_evaluations

    result = compare_evaluations(args.a, args.b, args.name, args.overwrite, args.bootstrap, args.seed,
                                 tuple(args.image_root))
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
    from evaluate.figures.accuracy import Accuracy
    from evaluate.figures.average_precision import AveragePrecision
    from evaluate.figures.calibration import CalibrationFigure
    from evaluate.figures.classification import F1

    options = options_from(EvaluateOptions, args, image_roots=tuple(args.image_root) if score else (),
                           **({} if score else {"progress": not args.no_progress}))
    result = rescore(args.predictions, args.out, options) if score else evaluate(options)
    scores = result.scores
    accuracy, f1, ap = scores.get(Accuracy), scores.get(F1), scores.get(AveragePrecision)
    low, high = accuracy.interval
    print(f"{scores.samples} samples: accuracy {accuracy.value:.4f} (95% interval {low:.4f}-{high:.4f}), "
          f"macro F1 {f1.averages.macro:.4f}, macro AP {ap.averages.macro:.4f}, micro AP {ap.averages.micro:.4f}, "
          f"ECE {scores.get(CalibrationFigure).value:.4f}")
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

"""``pipenv run predict``: a model on new images, or ``merge`` (join the shards of one prediction).

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
  pipenv run predict ~/new-photos                          newest model in model/, every image below the folder
  pipenv run predict 'shots/**/*.jpg' --model model/flowers.onnx --name week-12 --top-k 3
  pipenv run predict --paths todo.txt --operating-point output/eval/flowers-test --precision 0.99
  pipenv run predict ~/new-photos --threshold thresholds.yaml --rank uncertainty
  pipenv run predict ~/new-photos --stream                  rows appended as batches finish; if killed:
  pipenv run predict ~/new-photos --resume                  ... continue, nothing predicted twice
  pipenv run predict ~/new-photos --name week-12 --shard $SLURM_ARRAY_TASK_ID/4     one of 4 machines
  pipenv run predict merge output/predict/week-12-shard-*   join the 4 shards into output/predict/week-12/
  pipenv run predict ~/new-photos --name week-12 --submit slurm --shards 4    the same, as a Slurm array job
"""


def build_parser() -> argparse.ArgumentParser:
    """The main command: run a model on images."""
    parser = command_parser(
        "predict", epilog=EPILOG,
        description="Predict new, unlabelled images with an ONNX model (onnxruntime, no torch): one row per image "
                    "with its top-k classes and the decision (a class, or 'abstain' below an operating point's "
                    "threshold) in output/predict/<name>/, with a report. Other command: 'merge' (see its --help).")
    parser.add_argument("inputs", nargs="*", help="folders (recursive), image files, or globs (quoted: 'a/**/*.jpg')")
    parser.add_argument("--list", dest="lists", type=Path, action="append", default=[], metavar="FILE",
                        help="a list file: '<path> [<label>]' per line, labels ignored (repeatable)")
    parser.add_argument("--paths", type=Path, action="append", default=[], metavar="FILE",
                        help="a file of paths, one per line, relative to it or absolute (repeatable)")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the newest in model/)")
    parser.add_argument("--name", help="output folder under output/predict/ (default: <model>-<first input>)")
    parser.add_argument("--top-k", type=int, help="classes per row (default 5, or the class count when smaller)")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv",
                        help="predictions.csv (default) or predictions.jsonl")
    decision = parser.add_argument_group("decisions (default: every top-1 class is decided)")
    decision.add_argument("--operating-point", type=Path, metavar="EVALUATION",
                          help="take the per-class thresholds of this evaluation of the same model (a folder, or a "
                               "name under output/eval/); with --precision or --recall")
    decision.add_argument("--precision", type=float, metavar="P", help="the operating point's target precision")
    decision.add_argument("--recall", type=float, metavar="R", help="the operating point's target recall")
    decision.add_argument("--threshold", type=Path, metavar="FILE",
                          help="a YAML mapping of every class name to a threshold in [0, 1] (null: never decided)")
    decision.add_argument("--rank", choices=["uncertainty"],
                          help="write to_label.txt: the most uncertain images first, as a list file to label")
    decision.add_argument("--rank-limit", type=int, default=1000, metavar="N",
                          help="images in to_label.txt (default 1000; 0: all)")
    _add_running_options(parser)
    return parser


def _add_running_options(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("running")
    run.add_argument("--stream", action="store_true",
                     help="append rows as batches finish (a killed run keeps them; --resume continues it)")
    run.add_argument("--resume", action="store_true",
                     help="continue a killed --stream run of the same --name (the inputs may be left out)")
    run.add_argument("--auto-resume", action="store_true",
                     help="--resume when the output of this --name holds a prediction, else --stream (requeued jobs)")
    run.add_argument("--shard", metavar="I/N", help="predict shard I (0-based) of N: every N-th image from the I-th")
    run.add_argument("--providers", default="CPUExecutionProvider", metavar="P[,P...]",
                     help="onnxruntime execution providers, most preferred first (default CPUExecutionProvider; "
                          "e.g. CUDAExecutionProvider,CPUExecutionProvider)")
    run.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default 0: one per core)")
    run.add_argument("--batch-size", type=int, default=256, help="images per inference call (default 256)")
    run.add_argument("--workers", type=int, default=4, help="image-decoding threads (default 4)")
    run.add_argument("--on-unreadable", choices=["skip", "error"], default="skip",
                     help="skip an unreadable image and list it in unreadable.csv (default), or stop")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output of the same name")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--submit", choices=["slurm"],
                         help="with --name and --shards N: submit a Slurm array of N shards and a job that merges "
                         "them into output/predict/<name>/ (docs/clusters.md)")
    cluster.add_argument("--shards", type=int, metavar="N", help="with --submit: the number of shards (array tasks)")
    cluster.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                         help="with --submit: an sbatch option for every task (time=1:00:00, partition=cpu, "
                         "cpus-per-task=8, ...) or max-restarts=N; repeat for each")
    cluster.add_argument("--dry-run", action="store_true", help="with --submit: print the job scripts, submit nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_merge_parser() -> argparse.ArgumentParser:
    """``merge``: join the shards of one prediction."""
    parser = command_parser("predict merge", "Join the outputs of 'predict --shard i/n' runs (all n of them, same "
                                             "model, inputs and options) into the output one unsharded run writes.")
    parser.add_argument("shards", nargs="+", type=Path, help="the shards' output folders (or names under "
                                                             "output/predict/)")
    parser.add_argument("--name", help="merged output under output/predict/ (default: the shards' --name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output of that name")
    return parser


def predict_command(argv: Sequence[str]) -> int:
    """Predict and print the summary and where the files are."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.submit and (args.shards or args.slurm or args.dry_run):
        parser.error("--shards, --slurm and --dry-run only apply with --submit slurm")
    from predict.run import PredictOptions, predict

    options = PredictOptions(
        inputs=tuple(args.inputs), lists=tuple(args.lists), paths=tuple(args.paths), model=args.model,
        name=args.name, top_k=args.top_k, format=args.format, operating_point=args.operating_point,
        precision=args.precision, recall=args.recall, threshold=args.threshold, stream=args.stream,
        resume=args.resume, auto_resume=args.auto_resume, shard=args.shard, rank=args.rank, rank_limit=args.rank_limit,
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()), threads=args.threads,
        batch_size=args.batch_size, workers=args.workers, on_unreadable=args.on_unreadable, overwrite=args.overwrite,
        progress=not args.no_progress)
    if args.submit:
        from common.cli import spelled_out
        from predict.slurm_jobs import describe, submit_prediction

        print(describe(submit_prediction(spelled_out(parser, argv), options, args.shards, args.slurm,
                                         args.dry_run)), end="")
        return 0
    result = predict(options)
    _print_result(result)
    return 0


def merge_command(argv: Sequence[str]) -> int:
    """Merge shards and print the summary."""
    args = build_merge_parser().parse_args(argv)
    from predict.merge import merge_shards

    _print_result(merge_shards(args.shards, args.name, args.overwrite))
    return 0


def _print_result(result) -> None:  # a predict.run.PredictResult (not imported here, to keep --help fast)
    from common.paths import display_path
    from predict.output import REPORT_FILE, TO_LABEL_FILE
    from predict.rows import ROWS_FILES

    if result.already_done:
        print(f"resumed: {result.already_done:,} of {result.record.images:,} image(s) were already done")
    print(result.summary.sentence())
    print(f"predictions: {display_path(result.folder / ROWS_FILES[result.record.format])}")
    if result.record.rank:
        print(f"to label: {display_path(result.folder / TO_LABEL_FILE)}")
    print(f"report: {display_path(result.folder / REPORT_FILE)}")


COMMANDS = (
    Command(None, predict_command, "predict images and write output/predict/<name>/"),
    Command("merge", merge_command, "join the shards of one prediction"),
)


def main(argv: Sequence[str]) -> int | None:
    """Run ``merge`` when the first argument names it, else predict."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return dispatch(argv, COMMANDS, "predict")


if __name__ == "__main__":
    sys.exit(run_main(main))

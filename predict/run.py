"""``predict()``: a model and images -> ``output/predict/<name>/``.

By default everything is written into a staging folder and published whole at the
end (:func:`common.staging.staged`): a failure or a kill leaves nothing. With
``stream`` the rows are appended to the output folder itself as batches finish, so a
killed run keeps what it did and ``resume`` continues it: the rows already there (a
torn last row cut off) are not predicted again, and no row is written twice. With
``shard`` (``i/n``) the run predicts its share of the inputs (every n-th, from the
i-th) into ``<name>-shard-<i>-of-<n>``; ``predict merge`` joins the shards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path


from common.cli import check_plain_name
from common.contract import InputContract
from common.errors import UserError
from common.images import check_on_unreadable
from common.limits import DECODE_THREADS_PER_CORE, thread_count
from common.locks import exclusive
from common.onnx_model import DEFAULT_PROVIDERS, Model, newest_model, open_model
from common.paths import display_path, output_dir
from common.provenance import now
from common.staging import refuse_foreign_target, remove_stale_staging, staged
from predict.classifier import Classifier
from predict.decisions import Thresholds, no_thresholds_record
from predict.inputs import Inputs, gather_inputs
from predict.output import (
    RECORD_FILE,
    PredictionRecord,
    differences,
    predictions_root,
    read_record,
    write_record,
    write_to_label,
)
from predict.report import write_report
from predict.rows import RowWriter, read_rows, read_unreadable, recover
from predict.summary import Summariser, Summary

log = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl")
LOCK_FILE = ".lock"
"""Held in a ``--stream`` output while a process writes it."""
RANKS = ("uncertainty",)
OVERWRITE_HINT = "choose another --name, or pass --overwrite"


@dataclass(frozen=True)
class PredictOptions:
    """What to predict and how (docs/prediction.md lists each option).

    Attributes:
        inputs: Folders (recursive), image files and glob patterns.
        lists: List files (``<path> [<label>]``; labels ignored).
        paths: Files of paths (one per line).
        model: The ``.onnx`` model (default: the newest in ``model/``).
        name: Output folder name under ``output/predict/`` (default ``<model>-<first input>``).
        top_k: Classes per row (default 5, or the class count when smaller).
        format: ``csv`` (``predictions.csv``) or ``jsonl`` (``predictions.jsonl``).
        operating_point: An evaluation folder (or name) whose thresholds to apply.
        precision: The operating point's target precision.
        recall: The operating point's target recall.
        threshold: A YAML file of per-class thresholds.
        stream: Append rows as batches finish instead of publishing the folder at the end.
        resume: Continue a killed ``stream`` run of the same name (implies ``stream``).
        auto_resume: ``resume`` when the output of this name holds a prediction, else start a ``stream`` run
            (a requeued Slurm task runs the same command).
        shard: ``"i/n"``: predict shard i (0-based) of n.
        rank: ``uncertainty``: write ``to_label.txt``.
        rank_limit: Images in ``to_label.txt`` (0: all).
        providers: onnxruntime execution providers, most preferred first.
        threads: onnxruntime intra-op threads (0: one per core).
        batch_size: Images per inference call.
        workers: Image-decoding threads.
        on_unreadable: ``skip`` (list it in ``unreadable.csv``) or ``error``.
        overwrite: Replace an existing output of the same name (not with ``stream``).
        progress: Show a progress bar.
    """

    inputs: tuple[str, ...] = ()
    lists: tuple[Path, ...] = ()
    paths: tuple[Path, ...] = ()
    model: Path | None = None
    name: str | None = None
    top_k: int | None = None
    format: str = "csv"
    operating_point: Path | None = None
    precision: float | None = None
    recall: float | None = None
    threshold: Path | None = None
    stream: bool = False
    resume: bool = False
    auto_resume: bool = False
    shard: str | None = None
    rank: str | None = None
    rank_limit: int = 1000
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    threads: int = 0
    batch_size: int = 256
    workers: int = 4
    on_unreadable: str = "skip"
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class PredictResult:
    """What a prediction wrote.

    Attributes:
        folder: The output folder.
        record: Its record (``prediction.json``).
        summary: Counts and selections.
        already_done: Images a resumed run found done (0 otherwise).
    """

    folder: Path
    record: PredictionRecord
    summary: Summary
    already_done: int = 0


def predict(options: PredictOptions = PredictOptions()) -> PredictResult:
    """Predict the images and write the output folder (see the module docstring).

    Raises:
        UserError: For invalid options, no images, a missing or card-less model, an
            unavailable provider, thresholds of another model, an existing output
            (without ``overwrite``), a run to resume that differs, or an unreadable
            image under ``error``.
    """
    _check_options(options)
    shard = parse_shard(options.shard)
    model = open_model(options.model or newest_model(), thread_count(options.threads, "--threads"),
                       options.providers)
    classifier = Classifier(model, _thresholds(options, model.class_names), options.top_k, options.batch_size,
                            thread_count(options.workers, "--workers", DECODE_THREADS_PER_CORE))
    base = options.name or _default_name(model.path, options)
    name = f"{base}-shard-{shard[0]}-of-{shard[1]}" if shard else base
    check_plain_name(name)
    target = predictions_root() / name
    if options.auto_resume:
        options = replace(options, stream=True, resume=(target / RECORD_FILE).is_file())
    inputs = _gather(options, target)
    record = _new_record(name, base, classifier, inputs, shard, options)
    if options.stream or options.resume:
        return _run_streamed(target, record, classifier, inputs, options)
    refuse_foreign_target(target, RECORD_FILE, "--name")
    with staged(target, exists="replace" if options.overwrite else "refuse", hint=OVERWRITE_HINT) as stage:
        writer = RowWriter(stage.path, record.format, record.top_k, record.class_names)
        summariser = Summariser(record.class_names, record.rank_limit if record.rank else None)
        _predict_into(classifier, _assigned(inputs, shard), writer, inputs, options, 0, summariser)
        summary = finish(stage.path, record, model, summariser)
    return PredictResult(stage.target, record, summary)


def check_submission(options: PredictOptions) -> int:
    """What ``--submit slurm`` checks on the submitting machine before any job is sent: the options, the model
    and its card, the thresholds, the inputs.

    Returns:
        The number of images found.

    Raises:
        UserError: As :func:`predict` would, once, instead of in every task's output.
    """
    _check_options(options)
    model = open_model(options.model or newest_model(), thread_count(options.threads, "--threads"),
                       options.providers)
    _thresholds(options, model.class_names)
    count = len(gather_inputs(options.inputs, options.lists, options.paths).paths)
    if count == 0:
        raise UserError("no images to predict among the inputs given")
    return count


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (None for None).

    Raises:
        UserError: For text that is not ``i/n``, a count below 1, or an index outside 0..n-1.
    """
    if text is None:
        return None
    index, slash, total = text.partition("/")
    if not slash or not (index.isascii() and index.isdigit() and total.isascii() and total.isdigit()):
        raise UserError(f"--shard {text!r}: expected i/n, e.g. --shard 0/4 (shard i of n, i from 0 to n-1)")
    i, n = int(index), int(total)
    if n < 1:
        raise UserError(f"--shard {text}: the shard count must be at least 1")
    if i >= n:
        raise UserError(f"--shard {text}: the index must be 0..{n - 1} (shards count from 0: --shard 0/{n} to "
                        f"--shard {n - 1}/{n})")
    return i, n


def finish(folder: Path, record: PredictionRecord, model: Model | None, summariser: Summariser | None = None
           ) -> Summary:
    """Write the summary, ``report.html``, ``to_label.txt`` and the completed record (written last).

    Args:
        folder: The folder holding the rows (the output or its staging folder).
        record: The record; its ``summary`` and ``status`` are set.
        model: The model (its contract draws the network-input thumbnails); None: the record's contract.
        summariser: What the run gathered batch by batch; None reads the rows back (a resumed run, a merge).
    """
    if summariser is None:
        summariser = Summariser(record.class_names, record.rank_limit if record.rank else None)
        summariser.add_rows(read_rows(folder, record.format, record.top_k, record.class_names))
    summary = summariser.result(read_unreadable(folder))
    contract = model.contract if model is not None else InputContract.from_dict(record.input_contract, RECORD_FILE)
    write_report(folder, record, summary, contract)
    if record.rank:
        write_to_label(folder, summary.uncertain, record)
    record.summary, record.status = summary.to_record(), "complete"
    write_record(folder, record)
    return summary


def _predict_into(classifier: Classifier, paths: list[str], writer: RowWriter, inputs: Inputs,
                  options: PredictOptions, done: int, summariser: Summariser | None = None) -> None:
    """Predict ``paths`` batch by batch, appending rows (and feeding ``summariser``), with a progress bar
    (images/s and time left)."""
    from tqdm import tqdm

    total = done + len(paths)
    with tqdm(total=total, initial=done, unit="img", desc="predict", disable=None if options.progress else True,
              leave=False, smoothing=0.1) as bar:
        for batch in classifier.batches(paths, on_unreadable=options.on_unreadable, name_of=inputs.where):
            labels, values = classifier.top(batch.probabilities)
            top1, decided = classifier.decide(batch.probabilities)
            writer.write(batch.items, labels, values, top1, decided)
            writer.write_unreadable(batch.unreadable)
            if summariser is not None:
                summariser.add(batch.items, labels, values, decided)
            bar.update(len(batch.items) + len(batch.unreadable))


def _run_streamed(target: Path, record: PredictionRecord, classifier: Classifier, inputs: Inputs,
                  options: PredictOptions) -> PredictResult:
    """Write rows into the output folder as batches finish; on ``resume``, continue the run there.

    The folder is locked (``.lock``, :func:`common.locks.exclusive`) while a process writes it.
    """
    if not options.resume and target.exists():
        raise UserError(f"{display_path(target)} already exists; continue it with --resume, or choose another --name")
    if options.resume:
        _check_resumable(target, record)
    target.mkdir(parents=True, exist_ok=True)
    with exclusive(target / LOCK_FILE, display_path(target)):
        done: set[str] = set()
        shard = (record.shard["index"], record.shard["count"]) if record.shard else None
        assigned = _assigned(inputs, shard)
        if options.resume:
            record, done = _resume(target, record, set(assigned))
            if record.status == "complete":
                log.info("%s: already complete; nothing to do", display_path(target))
                summariser = Summariser(record.class_names, None)
                summariser.add_rows(read_rows(target, record.format, record.top_k, record.class_names))
                return PredictResult(target, record, summariser.result(read_unreadable(target)), record.images)
        else:
            write_record(target, record)
        writer = RowWriter(target, record.format, record.top_k, record.class_names)
        remaining = [path for path in assigned if path not in done]
        summariser = None if options.resume else Summariser(record.class_names,
                                                            record.rank_limit if record.rank else None)
        _predict_into(classifier, remaining, writer, inputs, options, len(assigned) - len(remaining), summariser)
        summary = finish(target, record, classifier.model, summariser)
    return PredictResult(target, record, summary, len(assigned) - len(remaining) if options.resume else 0)


def _check_resumable(target: Path, record: PredictionRecord) -> None:
    """Refuse to resume a folder without a prediction, or one made with other settings (before anything is touched).

    Raises:
        UserError: Naming each setting that differs, with both values.
    """
    if not (target / RECORD_FILE).is_file():
        raise UserError(f"{display_path(target)}: no prediction to resume there (no {RECORD_FILE}); start one with "
                        "--stream")
    previous = read_record(target)
    changed = differences(previous, record) + (
        [f"shard: {previous.shard} vs {record.shard}"] if previous.shard != record.shard else [])
    if changed:
        raise UserError(f"{display_path(target)}: the run being resumed was made with other settings ("
                        f"{'; '.join(changed)}); resume with the same model, inputs and options, or choose another "
                        "--name")


def _resume(target: Path, record: PredictionRecord, assigned: set[str]) -> tuple[PredictionRecord, set[str]]:
    """The record of the run being resumed (its resumes noted, written) and the images it finished (a torn last
    row cut off); a complete run's record and nothing.

    Raises:
        UserError: When its rows name an image that is not among ``assigned`` (this run's inputs), before anything
            is written or any image opened for the report.
    """
    _check_resumable(target, record)  # again, now that this process holds the folder
    previous = read_record(target)
    if previous.status == "complete":
        return previous, set()
    done = recover(target, previous.format, previous.top_k, previous.class_names)
    foreign = sorted(done - assigned)
    if foreign:
        raise UserError(f"{display_path(target)}: its rows name {len(foreign)} image(s) that are not among this "
                        f"prediction's inputs (e.g. {foreign[0]}): the output was changed after it was written; "
                        "predict again under another --name")
    remove_stale_staging(target)
    resumed = replace(previous, rank=record.rank, rank_limit=record.rank_limit,
                      on_unreadable=record.on_unreadable,
                      resumed=[*previous.resumed, {"at": now(), "done": len(done)}])
    write_record(target, resumed)
    return resumed, done


def _gather(options: PredictOptions, target: Path) -> Inputs:
    """The inputs named by the options; a resume without any takes those its record names."""
    if options.resume and not (options.inputs or options.lists or options.paths) and (target / RECORD_FILE).is_file():
        given = read_record(target).inputs_given
        arguments = [g for g in given if not g.startswith("--")]
        lists = [Path(g.removeprefix("--list ")) for g in given if g.startswith("--list ")]
        paths = [Path(g.removeprefix("--paths ")) for g in given if g.startswith("--paths ")]
        return gather_inputs(arguments, lists, paths)
    return gather_inputs(options.inputs, options.lists, options.paths)


def _assigned(inputs: Inputs, shard: tuple[int, int] | None) -> list[str]:
    if shard is None:
        return inputs.paths
    assigned = inputs.shard(*shard)
    if not assigned:
        log.warning("shard %d/%d has no images (there are only %d)", shard[0], shard[1], len(inputs.paths))
    return assigned


def _thresholds(options: PredictOptions, class_names: list[str]) -> Thresholds | None:
    if options.threshold is not None:
        return Thresholds.from_file(options.threshold, class_names)
    if options.operating_point is None:
        return None
    folder = Path(options.operating_point)
    if not folder.is_dir() and len(folder.parts) == 1:
        folder = output_dir() / "eval" / folder  # an evaluation's name
    thresholds = Thresholds.from_evaluation(folder, options.precision, options.recall)
    never = thresholds.source["unreachable"]
    if never:
        log.warning("the operating point has no threshold for %s (the target was unreachable there, or the class "
                    "had no samples): their top-1 predictions always abstain", never)
    return thresholds


def _new_record(name: str, base: str, classifier: Classifier, inputs: Inputs, shard: tuple[int, int] | None,
                options: PredictOptions) -> PredictionRecord:
    model = classifier.model
    thresholds = classifier.thresholds
    return PredictionRecord(
        name=name, base_name=base, created=now(), status="running", model=display_path(model.path),
        model_sha256=model.sha256, model_name=model.card.name, class_names=list(model.class_names),
        input_contract=model.contract.to_dict(), providers=list(model.providers), top_k=classifier.top_k,
        format=options.format, decision=thresholds.to_record() if thresholds else no_thresholds_record(),
        inputs_given=inputs.given, inputs_count=len(inputs.paths), inputs_sha256=inputs.sha256,
        shard={"index": shard[0], "count": shard[1]} if shard else None,
        images=len(_assigned(inputs, shard)), on_unreadable=options.on_unreadable, rank=options.rank,
        rank_limit=options.rank_limit)


def _default_name(model_path: Path, options: PredictOptions) -> str:
    first = (options.inputs or tuple(str(p) for p in (*options.lists, *options.paths)) or ("images",))[0]
    stem = Path(first.rstrip("/")).stem or "images"
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip(".-") or "images"
    return f"{model_path.stem}-{cleaned}"


def _check_options(options: PredictOptions) -> None:
    check_on_unreadable(options.on_unreadable, "--on-unreadable")
    if options.format not in FORMATS:
        raise UserError(f"--format {options.format!r}: one of {list(FORMATS)}")
    if options.rank is not None and options.rank not in RANKS:
        raise UserError(f"--rank {options.rank!r}: one of {list(RANKS)}")
    if options.batch_size < 1 or options.workers < 1:
        raise UserError("--batch-size and --workers must be at least 1")
    if options.rank_limit < 0 or options.threads < 0:
        raise UserError("--rank-limit and --threads must be at least 0")
    if options.rank and options.top_k == 1:
        raise UserError("--rank uncertainty needs the runner-up's probability: --top-k 2 or more")
    if options.threshold is not None and options.operating_point is not None:
        raise UserError("give either --operating-point (with --precision or --recall) or --threshold, not both")
    if options.operating_point is None and (options.precision is not None or options.recall is not None):
        raise UserError("--precision and --recall choose a target of an --operating-point (an evaluation folder); "
                        "name one with --operating-point output/eval/<name>")
    if options.operating_point is not None and (options.precision is None) == (options.recall is None):
        raise UserError("--operating-point needs exactly one target: --precision P or --recall R")
    for option, value in (("--precision", options.precision), ("--recall", options.recall)):
        if value is not None and not 0 < value <= 1:
            raise UserError(f"{option} {value}: a target in (0, 1], as given to evaluate's {option}-targets")
    if options.auto_resume and options.resume:
        raise UserError("--auto-resume already resumes when there is a prediction to resume; leave out --resume")
    if options.overwrite and (options.stream or options.resume or options.auto_resume):
        raise UserError("--overwrite replaces a finished output; a --stream output is continued with --resume or "
                        "started under another --name")
    check_plain_name(options.name)

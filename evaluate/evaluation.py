"""``evaluate()``: a model and a labelled list -> ``output/eval/<name>/``; and re-scoring.

Everything is written into a staging folder and published at the end
(:func:`common.staging.staged`), so a failure leaves no half-written evaluation
behind, and an existing one is replaced only with ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.cli import check_plain_name
from common.contract import InputContract
from common.errors import UserError
from common.files import write_json
from common.images import check_on_unreadable
from common.list_versions import list_reference
from common.lists import dataset_for_list, read_list
from common.model_card import ModelCard, read_card_file
from common.paths import data_dir, display_path, model_dir, output_dir
from common.provenance import moment, now
from common.results import (
    EVALUATION_RECORD,
    EvaluationRecord,
    Predictions,
    read_results,
    sum_tolerance_for,
    write_evaluation_record,
    write_predictions,
)
from common.staging import refuse_foreign_target, staged

if TYPE_CHECKING:
    from evaluate.metrics import Scores

OVERWRITE_HINT = "choose another --name, or pass --overwrite"


@dataclass(frozen=True)
class EvaluateOptions:
    """What to evaluate and how.

    Attributes:
        model: The ``.onnx`` model (default: the newest in ``model/``).
        list: A list file inside ``<data set>/lists/`` (default: the bundled digits' test list).
        name: Output folder name under ``output/eval/`` (default ``<model>-<list>``).
        threads: onnxruntime intra-op threads (0: one per core).
        batch_size: Images per inference call.
        workers: Image-decoding threads.
        on_unreadable: ``error`` or ``skip`` (logged, left out, listed in evaluation.json).
        bad_cases: Cases per bad-case list.
        per_pair: Cases per confusion pair.
        precision_targets: Precisions to find per-class thresholds for.
        recall_targets: Recalls to find per-class thresholds for.
        bootstrap: Bootstrap resamples for the F1 and AP intervals (0: none).
        seed: Seed of the bootstrap resampling.
        overwrite: Replace an existing output folder of the same name.
        progress: Show a progress bar.
    """

    model: Path | None = None
    list: Path | None = None
    name: str | None = None
    threads: int = 0
    batch_size: int = 256
    workers: int = 4
    on_unreadable: str = "error"
    bad_cases: int = 24
    per_pair: int = 3
    precision_targets: tuple[float, ...] = (0.95, 0.99)
    recall_targets: tuple[float, ...] = (0.95,)
    bootstrap: int = 1000
    seed: int = 0
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluation wrote.

    Attributes:
        folder: The output folder.
        metrics: The content of ``metrics.json``.
        files: Files written, relative to the folder.
    """

    folder: Path
    metrics: dict[str, Any]
    files: list[str] = field(default_factory=list)


def evaluate(options: EvaluateOptions = EvaluateOptions()) -> EvaluationResult:
    """Run a model on a labelled list and write predictions, metrics, plots and reports.

    Raises:
        UserError: For a missing or card-less model, a model whose input does not fit
            its contract, a list file problem, classes that differ between the data set
            and the model, an existing output folder (without ``overwrite``), or an
            unreadable image (unless skipping).
    """
    import numpy as np

    from common.images import decode_samples
    from common.onnx_model import open_model, predict_batches

    _check_options(options)
    model_path = options.model or newest_model()
    model = open_model(model_path, options.threads)
    list_path = options.list or _default_list()
    dataset = dataset_for_list(list_path)
    samples = read_list(dataset, list_path)
    check_same_classes(list(dataset.class_names), model.class_names, display_path(dataset.root / "classes.txt"),
                       f"the model {display_path(model_path)}")
    name = options.name or f"{model_path.stem}-{list_path.stem}"
    refuse_foreign_target(evaluations_root() / name, EVALUATION_RECORD, "--name")
    with staged(evaluations_root() / name, exists="replace" if options.overwrite else "refuse",
                hint=OVERWRITE_HINT) as stage:
        kept: list = []
        batches = decode_samples(dataset, samples, model.contract, options.batch_size, options.workers,
                                 options.on_unreadable)
        probabilities = predict_batches(model, with_progress(kept_images(batches, kept), len(samples),
                                                             options.progress))
        if not kept:
            raise UserError(f"{display_path(list_path)}: none of the {len(samples)} images could be decoded")
        predictions = Predictions([s.path for s in kept], np.array([s.label for s in kept], dtype=np.int64),
                                  probabilities, model.class_names)
        record = _record(name, model_path, model.card, list_path, dataset.root,
                         sorted({s.path for s in samples} - {s.path for s in kept}))
        reference = list_reference(list_path)
        record.list_sha256, record.list_version = reference.sha256, reference.version
        record.sum_tolerance = sum_tolerance_for(probabilities, model.card.quantized, display_path(model_path))
        write_predictions(stage.path / "predictions.csv", predictions)
        metrics, files = write_derived(stage.path, predictions, record, options)
    return EvaluationResult(stage.target, metrics, ["predictions.csv", *files])


def rescore(predictions_csv: Path, out: Path | None = None, options: EvaluateOptions = EvaluateOptions()
            ) -> EvaluationResult:
    """Score a ``predictions.csv`` again, without inference.

    Writes metrics, plots and reports into ``out`` (default: the CSV's folder, where
    only those derived files are replaced; ``predictions.csv`` is never touched; an
    existing ``out`` is replaced only with ``overwrite``, and only when it is an
    evaluation). The CSV is checked against the ``evaluation.json`` beside it
    (:func:`common.results.read_results`); thumbnails need the data set folder
    recorded there.

    Raises:
        UserError: For invalid options, a damaged result file (every problem with its
            row), or an ``out`` that exists and may not be replaced.
    """
    _check_options(options)
    predictions_csv = Path(predictions_csv)
    predictions, previous = read_results(predictions_csv)
    folder = Path(out) if out else predictions_csv.parent
    previous = previous or EvaluationRecord(name="", created="", class_names=list(predictions.class_names))
    record = replace(previous, name=folder.name, created=now(), rescored_from=display_path(predictions_csv))
    if folder.resolve() == predictions_csv.parent.resolve():
        with staged(folder, exists="replace", files=[]) as stage:
            metrics, files = write_derived(stage.path, predictions, record, options)
            stage.files = files  # only the derived files; predictions.csv stays as it is
        return EvaluationResult(folder, metrics, files)
    refuse_foreign_target(folder, EVALUATION_RECORD, "--out")
    with staged(folder, exists="replace" if options.overwrite else "refuse", hint=OVERWRITE_HINT) as stage:
        write_predictions(stage.path / "predictions.csv", predictions)
        metrics, files = write_derived(stage.path, predictions, record, options)
    return EvaluationResult(folder, metrics, ["predictions.csv", *files])


def check_same_classes(classes: list[str], reference: list[str], source: str, reference_source: str) -> None:
    """Refuse two class lists that differ (labels would mean different things).

    Args:
        classes: The class names being checked (e.g. a data set's).
        reference: The class names they must equal (e.g. a model's).
        source: Where ``classes`` came from, for the message.
        reference_source: Where ``reference`` came from.

    Raises:
        UserError: Naming both sources, their class counts, and the first position
            where they differ with the names there.
    """
    if classes == reference:
        return
    position = next((i for i, (a, b) in enumerate(zip(classes, reference)) if a != b), min(len(classes),
                                                                                           len(reference)))
    def at(names: list[str]) -> str:
        return repr(names[position]) if position < len(names) else "nothing (the list ends)"

    raise UserError(
        f"{source} has {len(classes)} classes but {reference_source} has {len(reference)}; they first differ at "
        f"position {position} (0-based): {at(classes)} vs {at(reference)}. Labels would mean different things."
    )


def evaluations_root() -> Path:
    """``<output>/eval``: where evaluations live."""
    return output_dir() / "eval"


def newest_model() -> Path:
    """The most recently exported model in the model folder (fp32 before int8 of the same export)."""
    folder = model_dir()
    models = [p for p in folder.glob("*.onnx") if not p.name.startswith(".")] if folder.is_dir() else []
    if not models:
        raise UserError(f"no model in {display_path(folder)}; export one with `pipenv run export`, or pass --model")

    def key(path: Path) -> tuple[datetime, bool]:
        modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        try:
            card = read_card_file(path.with_suffix(".json"))
        except UserError:
            return modified, not path.stem.endswith("-int8")
        return (moment(card.created) if card.created else modified), not card.quantized

    return max(models, key=key)


def write_derived(folder: Path, predictions: Predictions, record: EvaluationRecord, options: EvaluateOptions
                  ) -> tuple[dict[str, Any], list[str]]:
    """Score the predictions and write metrics, figures, the bad-case report and the report into ``folder``."""
    from evaluate.badcases import select_cases, write_bad_cases
    from evaluate.calibration import calibrate, write_reliability
    from evaluate.plots import write_confusions, write_pr_curves
    from evaluate.report import write_report

    scores = full_scores(predictions, options)
    calibration = calibrate(predictions.labels, predictions.probabilities)
    scores.metrics["calibration"] = calibration.summary()
    write_json(folder / "metrics.json", scores.metrics)
    write_evaluation_record(folder, record)
    files = ["metrics.json", "evaluation.json"]
    files += write_pr_curves(folder, scores, predictions.class_names)
    files += write_confusions(folder, scores.confusion, predictions.class_names)
    files += write_reliability(folder, calibration)
    selection = select_cases(predictions, options.bad_cases, options.per_pair)
    written, thumbs = write_bad_cases(folder, predictions, selection, *image_source(record))
    files += [*written, "result.txt", "report.html"]
    write_report(folder, scores.metrics, record, selection, thumbs, predictions.class_names, files)
    return scores.metrics, files


def image_source(record: EvaluationRecord | None) -> tuple[Path | None, InputContract | None]:
    """Where an evaluation's images are (the data set folder, when it still exists) and
    the input contract that decodes them as the network saw them (None when not recorded)."""
    if record is None or not record.dataset_root or not Path(record.dataset_root).is_dir():
        return None, None
    contract = (InputContract.from_dict(record.input_contract, f"{EVALUATION_RECORD}: input_contract")
                if record.input_contract else None)
    return Path(record.dataset_root), contract


def full_scores(predictions: Predictions, options: EvaluateOptions) -> Scores:
    """The point figures of :func:`evaluate.metrics.score` with bootstrap intervals merged in.

    ``metrics["uncertainty"]`` says how the intervals were made; with ``options.bootstrap``
    0 there are no F1 and AP intervals.
    """
    from evaluate.metrics import score
    from evaluate.uncertainty import LEVEL, bootstrap_intervals

    scores = score(predictions.labels, predictions.probabilities, predictions.class_names,
                   options.precision_targets, options.recall_targets)
    metrics = scores.metrics
    metrics["uncertainty"] = {"level": LEVEL, "accuracy": "Wilson score interval", "bootstrap": None}
    if options.bootstrap:
        intervals = bootstrap_intervals(predictions.labels, predictions.probabilities, options.bootstrap,
                                        options.seed)
        for row, f1, ap in zip(metrics["per_class"], intervals["f1"], intervals["ap"]):
            row["f1_interval"], row["ap_interval"] = f1, ap
        metrics["macro"]["f1_interval"], metrics["macro"]["ap_interval"] = intervals["macro_f1"], intervals["macro_ap"]
        metrics["uncertainty"]["bootstrap"] = {
            "resamples": options.bootstrap, "seed": options.seed,
            "method": "percentile; each resample draws the images with replacement (numpy default_rng(seed))"}
    return scores


def _record(name: str, model_path: Path, card: ModelCard, list_path: Path, root: Path, skipped: list[str]
            ) -> EvaluationRecord:
    return EvaluationRecord(
        name=name, created=now(), model=display_path(model_path), list=display_path(list_path),
        class_names=list(card.class_names), dataset_root=str(root.resolve()), model_name=card.name,
        network_hash=card.network.hash, source_run=card.source.run, input_contract=card.contract.to_dict(),
        training={"epoch": card.training.epoch, "metrics": card.training.metrics, "best": card.training.best},
        skipped=skipped, training_lists=card.source.lists)


def kept_images(batches: Iterable[tuple[list[Any], Any]], kept: list[Any]) -> Iterator[Any]:
    """The image arrays of ``(samples, images)`` batches; the samples are appended to ``kept`` as they pass."""
    for samples, images in batches:
        kept += samples
        yield images


def with_progress(batches: Iterable[Any], total: int, enabled: bool) -> Iterator[Any]:
    """Yield the batches, advancing a progress bar by the images in each."""
    from tqdm import tqdm

    with tqdm(total=total, unit="img", desc="evaluate", disable=None if enabled else True, leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def _default_list() -> Path:
    from common.digits import ensure_digits

    root = ensure_digits(data_dir() / "digits")
    return root / "lists" / "test.txt"


def _check_options(options: EvaluateOptions) -> None:
    check_on_unreadable(options.on_unreadable, "--on-unreadable")
    if options.batch_size < 1 or options.workers < 1 or options.threads < 0:
        raise UserError("--batch-size and --workers must be at least 1, --threads at least 0")
    targets = [*options.precision_targets, *options.recall_targets]
    if options.bootstrap < 0 or options.seed < 0:
        raise UserError(f"--bootstrap and --seed must be at least 0 (--bootstrap 0: no intervals), got "
                        f"--bootstrap {options.bootstrap}, --seed {options.seed}")
    if options.bad_cases < 0 or options.per_pair < 0:
        raise UserError("--bad-cases and --per-pair must be at least 0")
    if any(not 0 < t <= 1 for t in targets):
        raise UserError(f"precision and recall targets must be in (0, 1], got {targets}")
    check_plain_name(options.name)

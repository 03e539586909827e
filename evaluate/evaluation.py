"""``evaluate()``: a model and a labelled list -> ``output/eval/<name>/``; and re-scoring.

Everything is written into a staging folder and published at the end
(:func:`common.staging.staged`), so a failure leaves no half-written evaluation
behind, and an existing one is replaced only with ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.cli import check_plain_name
from common.contract import InputContract
from common.errors import UserError
from common.files import write_json
from common.images import check_on_unreadable
from common.limits import BOOTSTRAP_MEMORY, DECODE_THREADS_PER_CORE, MAX_BOOTSTRAP, thread_count
from common.list_versions import list_reference
from common.lists import dataset_for_list, linked_sources, read_list
from common.model_card import ModelCard
from common.onnx_model import newest_model
from common.paths import data_dir, display_path, output_dir
from common.provenance import now
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
from evaluate.trust import image_homes, recorded_data_set

if TYPE_CHECKING:
    from evaluate.scoring import Scores

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
        bootstrap: Bootstrap resamples for the intervals of the bootstrapped figures (0: none).
        seed: Seed of the bootstrap resampling.
        overwrite: Replace an existing output folder of the same name.
        progress: Show a progress bar.
        image_roots: Folders the user named (``--image-root``) that thumbnails may be read
            from although a result file, not the command line, names them (see :mod:`evaluate.trust`).
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
    image_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluation wrote.

    Attributes:
        folder: The output folder.
        metrics: The content of ``metrics.json``.
        scores: The figures, typed (what ``metrics.json`` and the reports were written from).
        files: Files written, relative to the folder.
    """

    folder: Path
    metrics: dict[str, Any]
    scores: Scores
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
    model = open_model(model_path, thread_count(options.threads, "--threads"))
    list_path = options.list or _default_list()
    dataset = dataset_for_list(list_path)
    samples = read_list(dataset, list_path)
    check_same_classes(list(dataset.class_names), model.class_names, display_path(dataset.root / "classes.txt"),
                       f"the model {display_path(model_path)}")
    check_bootstrap(options.bootstrap, len(samples), len(model.class_names))
    name = options.name or f"{model_path.stem}-{list_path.stem}"
    check_plain_name(name, "--name (default <model>-<list>)")
    refuse_foreign_target(evaluations_root() / name, EVALUATION_RECORD, "--name")
    # The list's data set is named on the command line, and inference reads every listed image through its
    # links: its images (and its linked source) may be drawn as thumbnails.
    named = (*options.image_roots, dataset.root, *linked_sources(dataset.root))
    options = replace(options, image_roots=named)
    with staged(evaluations_root() / name, exists="replace" if options.overwrite else "refuse",
                hint=OVERWRITE_HINT) as stage:
        kept: list = []
        workers = thread_count(options.workers, "--workers", DECODE_THREADS_PER_CORE)
        batches = decode_samples(dataset, samples, model.contract, options.batch_size, workers, options.on_unreadable)
        probabilities = predict_batches(model, with_progress(kept_images(batches, kept), len(samples),
                                                             options.progress))
        if not kept:
            raise UserError(f"{display_path(list_path)}: none of the {len(samples)} images could be decoded")
        predictions = Predictions([s.path for s in kept], np.array([s.label for s in kept], dtype=np.int64),
                                  probabilities, model.class_names)
        record = _record(name, model_path, model.card, list_path, dataset.root,
                         sorted({s.path for s in samples} - {s.path for s in kept}))
        record.model_sha256 = model.sha256
        reference = list_reference(list_path)
        record.list_sha256, record.list_version = reference.sha256, reference.version
        record.sum_tolerance = sum_tolerance_for(probabilities, model.card.quantized, display_path(model_path))
        write_predictions(stage.path / "predictions.csv", predictions)
        scores, metrics, files = write_derived(stage.path, predictions, record, options)
    return EvaluationResult(stage.target, metrics, scores, ["predictions.csv", *files])


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
    check_bootstrap(options.bootstrap, len(predictions.paths), len(predictions.class_names))
    folder = Path(out) if out else predictions_csv.parent
    previous = previous or EvaluationRecord(name="", created="", class_names=list(predictions.class_names))
    record = replace(previous, name=folder.name, created=now(), rescored_from=display_path(predictions_csv))
    if folder.resolve() == predictions_csv.parent.resolve():
        with staged(folder, exists="replace", files=[]) as stage:
            scores, metrics, files = write_derived(stage.path, predictions, record, options)
            stage.files = files  # only the derived files; predictions.csv stays as it is
        return EvaluationResult(folder, metrics, scores, files)
    refuse_foreign_target(folder, EVALUATION_RECORD, "--out")
    with staged(folder, exists="replace" if options.overwrite else "refuse", hint=OVERWRITE_HINT) as stage:
        write_predictions(stage.path / "predictions.csv", predictions)
        scores, metrics, files = write_derived(stage.path, predictions, record, options)
    return EvaluationResult(folder, metrics, scores, ["predictions.csv", *files])


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


def write_derived(folder: Path, predictions: Predictions, record: EvaluationRecord, options: EvaluateOptions
                  ) -> tuple[Scores, dict[str, Any], list[str]]:
    """Score the predictions and write metrics, figures, the bad-case report and the report into ``folder``.

    Returns:
        The scores, the content of ``metrics.json`` and the files written.
    """
    from evaluate.badcases import select_cases, write_bad_cases
    from evaluate.plots import write_confusions, write_pr_curves
    from evaluate.report import write_report
    from evaluate.scoring import metrics_json

    scores = full_scores(predictions, options)
    metrics = metrics_json(scores)
    write_json(folder / "metrics.json", metrics)
    write_evaluation_record(folder, record)
    files = ["metrics.json", "evaluation.json"]
    files += write_pr_curves(folder, scores)
    files += write_confusions(folder, scores.confusion, predictions.class_names)
    for figure, value in scores.items():
        files += figure.write_files(folder, value)
    selection = select_cases(predictions, options.bad_cases, options.per_pair)
    written, thumbs = write_bad_cases(folder, predictions, selection, *image_source(record, options.image_roots))
    files += [*written, "result.txt", "report.html"]
    write_report(folder, scores, record, selection, thumbs, files)
    return scores, metrics, files


def image_source(record: EvaluationRecord | None, named: tuple[Path, ...] = ()
                 ) -> tuple[Path | None, InputContract | None, tuple[Path, ...]]:
    """Where an evaluation's images may be read from, and how the network saw them.

    Args:
        record: The evaluation's record.
        named: Folders the user named on the command line (see :mod:`evaluate.trust`).

    Returns:
        The data set folder (None when not recorded, gone, or not trusted: a folder a
        file names is used only below the data folder or a folder in ``named``), the
        input contract that decodes the images as the network saw them (None when not
        recorded), and the folders the images may resolve into (:func:`evaluate.trust.image_homes`).
    """
    root = recorded_data_set(record.dataset_root if record else None, EVALUATION_RECORD, named)
    if record is None or root is None:
        return None, None, ()
    contract = (InputContract.from_dict(record.input_contract, f"{EVALUATION_RECORD}: input_contract")
                if record.input_contract else None)
    return root, contract, image_homes(root, named)


def full_scores(predictions: Predictions, options: EvaluateOptions) -> Scores:
    """Every figure of :mod:`evaluate.figures` on the predictions, with bootstrap intervals
    (none with ``options.bootstrap`` 0)."""
    from evaluate.scoring import score, with_intervals

    scores = score(predictions.labels, predictions.probabilities, predictions.class_names,
                   options.precision_targets, options.recall_targets)
    return with_intervals(scores, options.bootstrap, options.seed)


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
    check_resampling(options.bootstrap, options.seed)
    if options.bad_cases < 0 or options.per_pair < 0:
        raise UserError("--bad-cases and --per-pair must be at least 0")
    if any(not 0 < t <= 1 for t in targets):
        raise UserError(f"precision and recall targets must be in (0, 1], got {targets}")
    check_plain_name(options.name)


def check_resampling(bootstrap: int, seed: int) -> None:
    """Refuse a bootstrap count or seed out of range (``evaluate``, ``score`` and ``compare``).

    Raises:
        UserError: For a negative value, more than :data:`common.limits.MAX_BOOTSTRAP`
            resamples, or a seed of 2^32 or more.
    """
    if bootstrap < 0 or not 0 <= seed < 2**32:
        raise UserError(f"--bootstrap and --seed must be at least 0 (--bootstrap 0: no intervals; --seed below 2^32), "
                        f"got --bootstrap {bootstrap}, --seed {seed}")
    if bootstrap > MAX_BOOTSTRAP:
        raise UserError(f"--bootstrap {bootstrap}: at most {MAX_BOOTSTRAP} resamples (common.limits.MAX_BOOTSTRAP; "
                        "95% percentile intervals settle within a few thousand)")


def check_bootstrap(resamples: int, samples: int, classes: int, models: int = 1) -> None:
    """Refuse a bootstrap whose batch of resamples would need more than :data:`common.limits.BOOTSTRAP_MEMORY`.

    The bootstrap (:mod:`evaluate.uncertainty`) draws its resamples in batches of up to
    ``CHUNK_CELLS / samples``; each holds, per model, one row per confusion cell
    (``classes**2``) and up to two per sample, about 12 bytes per row and resample.

    Raises:
        UserError: With the estimate and the largest ``--bootstrap`` that fits (or 0).
    """
    from evaluate.uncertainty import CHUNK_CELLS

    if not resamples:
        return
    rows = models * (classes * classes + 2 * samples)
    batch = max(1, min(resamples, CHUNK_CELLS // max(1, samples)))
    need = 12 * rows * batch
    if need <= BOOTSTRAP_MEMORY:
        return
    fits = BOOTSTRAP_MEMORY // (12 * rows)
    advice = f"--bootstrap {fits} or fewer" if fits >= 1 else "--bootstrap 0 (no intervals)"
    raise UserError(f"--bootstrap {resamples}: with {classes} classes and {samples} samples a batch of resamples "
                    f"would hold about {need / 2**30:.1f} GB (at most {BOOTSTRAP_MEMORY / 2**30:.0f} GB, "
                    f"common.limits.BOOTSTRAP_MEMORY); use {advice}")

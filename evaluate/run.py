"""``evaluate()``: a model and a labelled list -> ``output/eval/<name>/``; and re-scoring.

Everything is written into a staging folder and renamed into place at the end, so a
failure leaves no half-written evaluation behind, and an existing one is replaced
only with ``overwrite``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import atomic_write_text, publish_folder, read_json_object
from common.lists import dataset_for_list, read_list
from common.paths import data_dir, display_path, model_dir, output_dir

ON_UNREADABLE = ("error", "skip")


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

    from evaluate.infer import decoded_batches, open_model, predict_batches
    from evaluate.results import Predictions

    _check_options(options)
    model_path = options.model or newest_model()
    model = open_model(model_path, options.threads)
    list_path = options.list or _default_list()
    dataset = dataset_for_list(list_path)
    samples = read_list(dataset, list_path)
    if list(dataset.class_names) != model.class_names:
        raise UserError(
            f"{display_path(dataset.root / 'classes.txt')} has {dataset.num_classes} classes "
            f"{_preview(dataset.class_names)} but {display_path(model_path)} was trained on "
            f"{len(model.class_names)} {_preview(model.class_names)}; labels would mean different things"
        )
    name = options.name or f"{model_path.stem}-{list_path.stem}"
    target = evaluations_root() / name
    _refuse_existing(target, options.overwrite)

    kept: list = []
    batches = decoded_batches(dataset, samples, model.contract, options.batch_size, options.workers,
                              options.on_unreadable, kept)
    probabilities = predict_batches(model, with_progress(batches, len(samples), options.progress))
    skipped = sorted({s.path for s in samples} - {s.path for s in kept})
    if not kept:
        raise UserError(f"{display_path(list_path)}: none of the {len(samples)} images could be decoded")
    predictions = Predictions([s.path for s in kept], np.array([s.label for s in kept], dtype=np.int64),
                              probabilities, model.class_names)
    card = model.card
    context = {
        "name": name, "created": _now(), "model": display_path(model_path), "model_name": card.get("name"),
        "network_hash": (card.get("network") or {}).get("hash"), "source_run": (card.get("source") or {}).get("run"),
        "list": display_path(list_path), "dataset_root": str(dataset.root.resolve()), "skipped": skipped,
        "input_contract": model.contract.to_dict(), "class_names": model.class_names,
    }
    return _write_evaluation(target, predictions, context, options, write_predictions_file=True)


def rescore(predictions_csv: Path, out: Path | None = None, options: EvaluateOptions = EvaluateOptions()
            ) -> EvaluationResult:
    """Score a ``predictions.csv`` again, without inference.

    Writes metrics, plots and reports into ``out`` (default: the CSV's folder, where
    only those derived files are replaced; ``predictions.csv`` is never touched).
    Thumbnails need the data set folder recorded in ``evaluation.json`` beside the CSV.
    """
    from evaluate.results import read_predictions

    predictions_csv = Path(predictions_csv)
    predictions = read_predictions(predictions_csv)
    context = read_json_object(predictions_csv.parent / "evaluation.json")
    context.setdefault("model", "unknown (no evaluation.json beside the predictions)")
    context.setdefault("list", "unknown")
    context.update(name=(out or predictions_csv.parent).name, created=_now(), rescored_from=display_path(predictions_csv))
    folder = Path(out) if out else predictions_csv.parent
    if folder.resolve() == predictions_csv.parent.resolve():
        return _write_derived_in_place(folder, predictions, context, options)
    return _write_evaluation(folder, predictions, context, options, write_predictions_file=True)


def evaluations_root() -> Path:
    """``<output>/eval``: where evaluations live."""
    return output_dir() / "eval"


def newest_model() -> Path:
    """The most recently exported model in the model folder (fp32 before int8 of the same export)."""
    folder = model_dir()
    models = [p for p in folder.glob("*.onnx") if not p.name.startswith(".")] if folder.is_dir() else []
    if not models:
        raise UserError(f"no model in {display_path(folder)}; export one with `pipenv run export`, or pass --model")

    def key(path: Path) -> tuple[str, bool]:
        card = read_json_object(path.with_suffix(".json"))
        created = str(card.get("created", ""))
        export = card.get("export")
        quantized = bool(export.get("quantization")) if isinstance(export, dict) else path.stem.endswith("-int8")
        stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat()
        return (created or stamp, not quantized)

    return max(models, key=key)


def _write_evaluation(target: Path, predictions, context: dict[str, Any], options: EvaluateOptions,
                      write_predictions_file: bool) -> EvaluationResult:
    from evaluate.results import write_predictions

    _refuse_existing(target, options.overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        files = []
        if write_predictions_file:
            write_predictions(staging / "predictions.csv", predictions)
            files.append("predictions.csv")
        metrics, derived = _write_derived(staging, predictions, context, options)
        files += derived
        try:
            publish_folder(staging, target, options.overwrite)
        except FileExistsError:
            raise UserError(f"{display_path(target)} appeared meanwhile; nothing was overwritten") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EvaluationResult(target, metrics, files)


def _write_derived_in_place(folder: Path, predictions, context: dict[str, Any], options: EvaluateOptions
                            ) -> EvaluationResult:
    import os

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.rescore-", dir=folder.parent))
    try:
        metrics, files = _write_derived(staging, predictions, context, options)
        for name in files:
            destination = folder / name
            if destination.is_dir():
                shutil.rmtree(destination)
            os.replace(staging / name, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EvaluationResult(folder, metrics, files)


def _write_derived(folder: Path, predictions, context: dict[str, Any], options: EvaluateOptions
                   ) -> tuple[dict[str, Any], list[str]]:
    from evaluate.badcases import select_cases, write_bad_cases
    from evaluate.metrics import score
    from evaluate.plots import write_confusions, write_pr_curves
    from evaluate.report import write_report

    scores = score(predictions.labels, predictions.probabilities, predictions.class_names,
                   options.precision_targets, options.recall_targets)
    atomic_write_text(folder / "metrics.json", json.dumps(scores.metrics, indent=2) + "\n")
    atomic_write_text(folder / "evaluation.json", json.dumps(context, indent=2) + "\n")
    files = ["metrics.json", "evaluation.json"]
    files += write_pr_curves(folder, scores, predictions.class_names)
    files += write_confusions(folder, scores.confusion, predictions.class_names)
    selection = select_cases(predictions, options.bad_cases, options.per_pair)
    root = Path(context["dataset_root"]) if context.get("dataset_root") else None
    if root is not None and not root.is_dir():
        root = None
    written, thumbs = write_bad_cases(folder, predictions, selection, root)
    files += [*written, "result.txt", "report.html"]
    write_report(folder, scores.metrics, context, selection, thumbs, predictions.class_names, files)
    return scores.metrics, files


def with_progress(batches, total: int, enabled: bool):
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


def _refuse_existing(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise UserError(f"{display_path(target)} already exists; choose another --name, or pass --overwrite")



def _check_options(options: EvaluateOptions) -> None:
    if options.on_unreadable not in ON_UNREADABLE:
        raise UserError(f"--on-unreadable {options.on_unreadable!r}: use one of {list(ON_UNREADABLE)}")
    if options.batch_size < 1 or options.workers < 1 or options.threads < 0:
        raise UserError("--batch-size and --workers must be at least 1, --threads at least 0")
    targets = [*options.precision_targets, *options.recall_targets]
    if any(not 0 < t <= 1 for t in targets):
        raise UserError(f"precision and recall targets must be in (0, 1], got {targets}")
    if options.name is not None and (not options.name or "/" in options.name or options.name.startswith(".")):
        raise UserError(f"--name {options.name!r}: a plain folder name, without '/' or a leading '.'")


def _preview(names) -> str:
    names = list(names)
    return str(names if len(names) <= 6 else [*names[:6], "..."])


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")

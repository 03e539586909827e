"""Out-of-sample probabilities for a review, and the refusal of in-sample ones.

A label check is only as good as the probabilities it reads: a model that trained on an
image has learned its label, right or wrong, so its probability for it says nothing.
The review therefore takes probabilities only from

- a cross-validation (``pipenv run crossval``: its ``evaluation.json`` records
  ``out_of_sample``, each row predicted by the fold's model that did not train on it),
  for the ``train`` list; and
- an evaluation (``pipenv run evaluate``) of a list the model did not train on: its
  ``evaluation.json`` names the model's training lists (from the model card, or from
  the run folder when the card predates them); the lists' contents are found by
  sha256 among the data set's lists and their history, and an evaluation sharing any
  image with them is refused.

Every source must hold exactly the rows of the current list it names (same images,
same labels): probabilities of an older version of a list are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from common.files import file_sha256, read_text
from common.list_versions import history_file, list_entries, read_history
from common.lists import Dataset, normalise_path, read_split
from common.paths import display_path
from common.results import EVALUATION_RECORD, EvaluationRecord, read_results
from common.run_folder import find_run


@dataclass
class OutOfSample:
    """Probabilities for some of a data set's images, none from a model that trained on them.

    Attributes:
        paths: Image paths.
        labels: Their labels in the current lists ``(N,)``.
        probabilities: ``(N, K)``.
        splits: The list each row came from.
        sources: One description per source read.
    """

    paths: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    probabilities: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))
    splits: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)


def predictions_file(spec: Path) -> Path:
    """The ``predictions.csv`` a ``--probabilities`` argument names (the file, or a folder holding it).

    Raises:
        UserError: When there is none.
    """
    spec = Path(spec)
    candidate = spec / "predictions.csv" if spec.is_dir() else spec
    if not candidate.is_file():
        raise UserError(f"--probabilities {display_path(spec)}: no predictions.csv there (give an evaluation folder, "
                        "a cross-validation folder under output/crossval/, or the file)")
    return candidate


def load_out_of_sample(dataset: Dataset, specs: list[Path]) -> OutOfSample:
    """Read every source, check it against the current lists, refuse in-sample ones, and pool them.

    Raises:
        UserError: For a source of another data set or classes, without its ``evaluation.json``, of another
            version of its list, in-sample, or naming an image another source already gave.
    """
    pooled = OutOfSample(probabilities=np.empty((0, dataset.num_classes), dtype=np.float32))
    owner: dict[str, str] = {}
    for spec in specs:
        path = predictions_file(spec)
        predictions, record = read_results(path)
        shown = display_path(path)
        split = _check_source(dataset, predictions.paths, predictions.labels, predictions.class_names, record, shown)
        taken = next((p for p in predictions.paths if p in owner), None)
        if taken is not None:
            raise UserError(f"{shown}: {taken!r} already has probabilities from {owner[taken]}; give each image's "
                            "probabilities once")
        owner.update(dict.fromkeys(predictions.paths, shown))
        pooled.paths += predictions.paths
        pooled.splits += [split] * len(predictions.paths)
        pooled.labels = np.concatenate([pooled.labels, predictions.labels])
        pooled.probabilities = np.concatenate([pooled.probabilities, predictions.probabilities])
        pooled.sources.append({"file": shown, "list": split, "rows": len(predictions.paths),
                               "list_sha256": record.list_sha256, "list_version": record.list_version,
                               "kind": "cross-validation" if record.out_of_sample else "evaluation",
                               "model": record.model})
    return pooled


def _check_source(dataset: Dataset, paths: list[str], labels: np.ndarray, class_names: list[str],
                  record: EvaluationRecord | None, shown: str) -> str:
    """The list a source's rows are of, after every check; raises when one fails."""
    if record is None:
        raise UserError(f"{shown}: no {EVALUATION_RECORD} beside it, so nothing says which model made these "
                        "probabilities or whether it trained on these images; give an evaluation or "
                        "cross-validation folder")
    if list(class_names) != list(dataset.class_names):
        raise UserError(f"{shown}: its classes {class_names[:10]} are not the data set's {list(dataset.class_names)[:10]}")
    if not record.dataset_root or Path(record.dataset_root).resolve() != dataset.root.resolve():
        raise UserError(f"{shown}: it is of data set {record.dataset_root}, not {display_path(dataset.root)}")
    split = Path(record.list).stem
    _check_current(dataset, split, paths, labels, set(record.skipped), shown)
    if not record.out_of_sample:
        _refuse_in_sample(dataset, record, set(paths), shown)
    return split


def _check_current(dataset: Dataset, split: str, paths: list[str], labels: np.ndarray, skipped: set[str],
                   shown: str) -> None:
    """Refuse rows that are not exactly the current list's samples (less the images skipped as unreadable)."""
    current = {s.path: s.label for s in read_split(dataset, split) if s.path not in skipped}
    given = dict(zip(paths, (int(label) for label in labels)))
    moved = next((p for p in given if current.get(p) != given[p]), None)
    missing = next((p for p in current if p not in given), None)
    if moved is None and missing is None:
        return
    if moved is not None:
        now = "is not in it now" if moved not in current else f"is labelled {current[moved]} there now"
        detail = f"{moved!r} has label {given[moved]} in these predictions but {now}"
    else:
        detail = f"{missing!r} is in the list now but has no row here"
    raise UserError(f"{shown}: these are predictions for another version of lists/{split}.txt ({detail}); evaluate "
                    "(or cross-validate) again on the current list")


def _refuse_in_sample(dataset: Dataset, record: EvaluationRecord, paths: set[str], shown: str) -> None:
    """Refuse an evaluation whose model trained on any of its images (or when that cannot be told)."""
    training = _training_lists(record)
    if training is None:
        raise UserError(
            f"{shown}: cannot tell whether the model trained on these images: {EVALUATION_RECORD} names no training "
            f"lists (a model exported before list versions) and its run {record.source_run!r} is not in output/train; "
            "evaluate a model exported by this version, or cross-validate (pipenv run crossval)")
    for entry in training:
        content = _list_content(dataset, entry)
        if content is None:
            raise UserError(f"{shown}: cannot tell whether the model trained on these images: its training list "
                            f"{entry.get('path')} (sha256 {str(entry.get('sha256'))[:8]}) is neither a current list "
                            "of the data set nor in its lists/history/; cross-validate (pipenv run crossval) instead")
        shared = paths & content
        if shared:
            raise UserError(
                f"{shown}: in-sample probabilities: the model {record.model_name or record.model} trained on "
                f"{len(shared)} of these {len(paths)} images (its training list {entry.get('path')}, e.g. "
                f"{sorted(shared)[0]!r}); a model's probabilities for images it learned say nothing about their "
                "labels. Use cross-validation for the training split: pipenv run crossval")


def _training_lists(record: EvaluationRecord) -> list[dict[str, Any]] | None:
    """The model's training list(s): from the evaluation record (the card), else from its run's manifest.

    Entries whose role is ``val`` are left out (validation chose the checkpoint, it was not trained on); an
    entry without a role (written before roles were recorded) counts as training, to be safe.
    """
    lists = record.training_lists
    if not lists and record.source_run:
        try:
            lists = find_run(record.source_run).read_manifest().data.get("lists")
        except UserError:
            lists = None
    if not lists:
        return None
    return [entry for entry in lists.values() if isinstance(entry, dict) and entry.get("role") != "val"]


def _list_content(dataset: Dataset, entry: dict[str, Any]) -> set[str] | None:
    """The image paths of a recorded list (by its sha256): the current file, or its copy in the history."""
    digest, split = entry.get("sha256"), Path(str(entry.get("path", ""))).stem
    current = dataset.list_path(split)
    if current.is_file() and file_sha256(current) == digest:
        found = current
    else:
        try:
            version = read_history(dataset.root).version_of(split, str(digest))
        except UserError:
            return None
        found = history_file(dataset.root / "lists", split, version) if version else None
        if found is None or not found.is_file():
            return None
    return {normalise_path(path) or path for path in list_entries(read_text(found))}

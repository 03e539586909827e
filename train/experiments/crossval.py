"""``pipenv run crossval``: out-of-sample probabilities for every training image, by k-fold cross-validation.

::

    pipenv run crossval --config train/configs/default.yaml --folds 5 [--seed 0] [--name N] [key=value ...]

The training list (``data.train_split``, usually ``train``) is split into ``k`` folds,
stratified by class and seeded. Each fold's lists are written into the data set as
ordinary list files, derived from the training list's current version (never changed
afterwards; :func:`common.list_versions.derived_list_name`)::

    lists/cv5-s0-v2-f1-train.txt      the images fold 1 trains on (the other four folds)
    lists/cv5-s0-v2-f1-holdout.txt    the images it predicts (this fold)

and each fold is an ordinary training run (``output/train/<name>-f<i>-<time>/``, listed by
``pipenv run runs``) with ``data.train_split`` set to its training list; the validation
list is unchanged, so checkpoint choice never sees the held-out fold. Each held-out
fold is then predicted by its run's ``best.pt``, with the same un-augmented decoding
training validates with. ``output/crossval/<name>/`` receives

    plan.json          the data set, the list and its sha256 and version, folds, seed, config
    predictions.csv    one row per training image, its out-of-fold probabilities (``common.results``)
    evaluation.json    the provenance: out of sample, which fold's run and checkpoint predicted what
    folds.csv          path,fold

Running the same command again continues: finished folds are skipped, an interrupted
one resumes from its ``last.pt``. A different cross-validation under the same name is
refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import check_plain_name
from common.errors import UserError
from common.files import file_sha256, read_json, write_csv, write_json
from common.list_versions import derived_list_name, read_history, record_noticed, write_derived
from common.lists import Dataset, Sample, dataset_root, read_split
from common.locks import exclusive
from common.paths import display_path, output_dir
from common.provenance import command_text, now
from common.results import EvaluationRecord, Predictions, sum_tolerance_for, write_evaluation_record, write_predictions
from common.run_folder import RunFolder, RunStatus, list_runs
from common.splits import check_split_settings
from common.staging import staged
from train.config import DEFAULT_CONFIG, LoadedConfig, load_train_config

log = logging.getLogger("train.experiments.crossval")

DONE = (RunStatus.FINISHED, RunStatus.STOPPED_EARLY)
"""Run statuses of a fold that needs no more training."""


@dataclass(frozen=True)
class CrossvalOptions:
    """A cross-validation.

    Attributes:
        config: The training config (default ``train/configs/default.yaml``).
        overrides: ``key=value`` overrides applied to every fold's run.
        folds: Number of folds, at least 2.
        seed: Seed of the stratified fold assignment.
        name: The output folder's name (default ``<data set>-cv<folds>-s<seed>-v<train list version>``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: Show progress bars.
        batch_size: Images per batch when predicting the held-out folds.
    """

    config: Path | None = None
    overrides: tuple[str, ...] = ()
    folds: int = 5
    seed: int = 0
    name: str | None = None
    device: str = "auto"
    progress: bool = True
    batch_size: int = 256


@dataclass
class CrossvalResult:
    """What a cross-validation wrote.

    Attributes:
        folder: ``output/crossval/<name>/``.
        runs: The folds' run folders, in fold order.
        accuracy: Out-of-fold accuracy over every predicted training image.
        samples: Images predicted.
    """

    folder: Path
    runs: list[Path] = field(default_factory=list)
    accuracy: float = 0.0
    samples: int = 0


@dataclass(frozen=True)
class _Plan:
    """What a cross-validation is: recorded in ``plan.json``, compared when it is run again.

    Attributes:
        dataset: The data set.
        split: The training list's name.
        samples: Its samples.
        sha256: Its sha256.
        version: Its version in the list history.
        fold_of: The fold (1..folds) of each sample.
        folds: Number of folds.
        seed: Seed of the assignment.
    """

    dataset: Dataset
    split: str
    samples: list[Sample]
    sha256: str
    version: int
    fold_of: np.ndarray
    folds: int
    seed: int

    def lists(self, fold: int) -> tuple[str, str]:
        """``(training list, holdout list)`` names of fold ``fold`` (1-based)."""
        return (derived_list_name(self.folds, self.seed, self.version, fold, "train"),
                derived_list_name(self.folds, self.seed, self.version, fold, "holdout"))


def crossval(options: CrossvalOptions) -> CrossvalResult:
    """Cross-validate the config's training list; continue an interrupted cross-validation of the same name.

    Raises:
        UserError: For fewer than 2 folds, a class with fewer training images than folds, a different
            cross-validation under the same name, a fold run that diverged or is training elsewhere, or any
            problem of the config, the data or a run.
    """
    if options.folds < 2:
        raise UserError(f"--folds: at least 2, got {options.folds}")
    check_split_settings(options.seed)
    check_plain_name(options.name)
    loaded = load_train_config(options.config or DEFAULT_CONFIG, options.overrides)
    if options.name:
        _check_settings(output_dir() / "crossval" / options.name, loaded, options)  # before anything is written
    plan, texts = make_plan(loaded, options)
    name = options.name or f"{plan.dataset.root.name}-cv{options.folds}-s{options.seed}-v{plan.version}"
    folder = output_dir() / "crossval" / name
    if folder.is_dir():
        _check_plan(folder, plan, loaded, options, write=False)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / ".lock", f"cross-validation {display_path(folder)}"):
        _check_plan(folder, plan, loaded, options)
        write_derived(plan.dataset.root, texts)
        runs = [fold_run(loaded, options, plan, fold, name) for fold in range(1, options.folds + 1)]
        return _predict_all(folder, loaded, options, plan, runs)


def make_plan(loaded: LoadedConfig, options: CrossvalOptions) -> tuple[_Plan, dict[str, str]]:
    """The folds of the config's training list (its version recorded first) and the texts of their lists (written
    into the data set by the caller, once the cross-validation is known to go ahead).

    Raises:
        UserError: When a class has fewer images than folds (before anything is recorded).
    """
    from sklearn.model_selection import StratifiedKFold

    from common.digits import open_dataset_or_digits

    config = loaded.config
    dataset = open_dataset_or_digits(config.data.dataset)
    split = config.data.train_split
    samples = read_split(dataset, split)
    labels = np.array([s.label for s in samples])
    counts = np.bincount(labels, minlength=dataset.num_classes)
    few = [f"{dataset.class_names[c]!r} ({counts[c]})" for c in range(dataset.num_classes)
           if 0 < counts[c] < options.folds]
    if few:
        raise UserError(f"{display_path(dataset.list_path(split))}: class(es) with fewer images than --folds "
                        f"{options.folds}: {', '.join(few)}; use fewer folds")
    record_noticed(dataset.root, command_text())
    digest = file_sha256(dataset.list_path(split))
    if read_split(dataset, split) != samples:
        raise UserError(f"{display_path(dataset.list_path(split))} changed while it was read; run again")
    version = read_history(dataset.root).version_of(split, digest)
    if version is None:  # record_noticed has just recorded it, unless the list changed in between
        raise UserError(f"{display_path(dataset.list_path(split))} changed while its version was recorded; run again")
    fold_of = np.zeros(len(samples), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(samples)), labels), start=1):
        fold_of[held] = fold
    plan = _Plan(dataset, split, samples, digest, version, fold_of, options.folds, options.seed)
    texts = {}
    for fold in range(1, options.folds + 1):
        train_list, holdout = plan.lists(fold)
        where = f"fold {fold} of {options.folds} (seed {options.seed}) of {split} v{version}"
        texts[train_list] = _list_text(f"{where}: the images it trains on", samples, fold_of != fold)
        texts[holdout] = _list_text(f"{where}: the images it predicts", samples, fold_of == fold)
    return plan, texts


def _list_text(title: str, samples: list[Sample], chosen: np.ndarray) -> str:
    return f"# {title}; <path> <label>\n" + "".join(f"{s.path} {s.label}\n" for s, keep in zip(samples, chosen) if keep)


def _check_settings(folder: Path, loaded: LoadedConfig, options: CrossvalOptions) -> None:
    """Refuse a ``--name`` that holds a cross-validation of other folds, seed, list or config, before the plan is
    made (making it records the list's version in the data set)."""
    path = folder / "plan.json"
    if not path.is_file():
        return
    found = read_json(path)
    wanted = {"list": loaded.config.data.train_split, "folds": options.folds, "seed": options.seed,
              "config": loaded.config.to_dict()}
    differ = [key for key, value in wanted.items() if found.get(key) != value]
    if differ:
        raise UserError(f"{display_path(folder)} holds another cross-validation ({', '.join(differ)} differ); choose "
                        "another --name")


def _check_plan(folder: Path, plan: _Plan, loaded: LoadedConfig, options: CrossvalOptions,
                write: bool = True) -> None:
    """Write ``plan.json`` (unless not ``write``), or check that the one there describes this same cross-validation.

    Raises:
        UserError: When the folder holds something else, or another cross-validation.
    """
    wanted = {"dataset": str(plan.dataset.root.resolve()), "list": plan.split, "list_sha256": plan.sha256,
              "list_version": plan.version, "folds": options.folds, "seed": options.seed,
              "config": loaded.config.to_dict(), "config_file": display_path(options.config or DEFAULT_CONFIG),
              "overrides": list(options.overrides)}
    path = folder / "plan.json"
    if not path.is_file():
        if any(entry.name not in (".lock",) for entry in folder.iterdir()):
            raise UserError(f"{display_path(folder)} exists and is not a cross-validation (no plan.json); choose "
                            "another --name")
        if write:
            write_json(path, {**wanted, "created": now()})
        return
    found = read_json(path)
    differ = [key for key in wanted if key not in ("config_file", "overrides") and found.get(key) != wanted[key]]
    if differ:
        raise UserError(f"{display_path(folder)} holds another cross-validation ({', '.join(differ)} differ: e.g. the "
                        "training list changed since, or other settings); choose another --name")


def fold_run(loaded: LoadedConfig, options: CrossvalOptions, plan: _Plan, fold: int, name: str) -> RunFolder:
    """The finished run of one fold: found and kept, resumed, or trained now.

    Raises:
        UserError: When the fold's run diverged, or trains in another process.
    """
    from train.run import RunOptions, resume, train

    train_list, _ = plan.lists(fold)
    run_options = RunOptions(name=f"{name}-f{fold}", device=options.device, progress=options.progress)
    run = existing_run(plan.dataset, train_list, f"{name}-f{fold}-")
    if run is not None:
        status = run.status()
        if status in DONE or len(run.read_metrics()) >= loaded.config.epochs:
            log.info("fold %d: %s is done (%s)", fold, display_path(run.path), status)
            return run
        if status is RunStatus.DIVERGED:
            raise UserError(f"fold {fold}: its run {display_path(run.path)} diverged; lower optim.lr (with another "
                            "--name) or remove that run")
        if (run.checkpoints_dir / "last.pt").is_file():
            log.info("fold %d: resuming %s (%s)", fold, display_path(run.path), status)
            resume(str(run.path), options=RunOptions(device=options.device, progress=options.progress))
            return run
    log.info("fold %d of %d: training on %s", fold, options.folds, train_list)
    fold_config = load_train_config(options.config or DEFAULT_CONFIG,
                                    [*options.overrides, f"data.train_split={train_list}"])
    result = train(fold_config, run_options)
    if result.status not in DONE:
        raise UserError(f"fold {fold}: its run {display_path(result.run_dir)} ended {result.status}: {result.message}")
    return RunFolder(result.run_dir)


def existing_run(dataset: Dataset, train_list: str, prefix: str) -> RunFolder | None:
    """The newest run named ``<prefix>...`` that trains on ``train_list`` of ``dataset``, or None."""
    found = None
    for run in list_runs():
        if not run.name.startswith(prefix):
            continue
        try:
            config = run.read_run_config()
        except UserError:
            continue
        if config.split("train") == train_list and dataset_root(config.dataset).resolve() == dataset.root.resolve():
            found = run
    return found


def _predict_all(folder: Path, loaded: LoadedConfig, options: CrossvalOptions, plan: _Plan, runs: list[RunFolder]
                 ) -> CrossvalResult:
    """Predict every held-out fold with its run's best checkpoint; publish the out-of-fold predictions."""
    probabilities = np.zeros((len(plan.samples), plan.dataset.num_classes), dtype=np.float32)
    predicted = np.zeros(len(plan.samples), dtype=bool)
    index = {s.path: n for n, s in enumerate(plan.samples)}
    entries = []
    for fold, run in enumerate(runs, start=1):
        _, holdout = plan.lists(fold)
        paths, scores, checkpoint = predict_holdout(run, plan.dataset, holdout, loaded, options)
        rows = np.array([index[p] for p in paths], dtype=np.int64)
        probabilities[rows], predicted[rows] = scores, True
        entries.append({"fold": fold, "run": run.name, "run_dir": display_path(run.path),
                        "checkpoint": display_path(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
                        "holdout": holdout, "holdout_sha256": file_sha256(plan.dataset.list_path(holdout)),
                        "samples": len(paths)})
    kept = [s for s, done in zip(plan.samples, predicted) if done]
    predictions = Predictions([s.path for s in kept], np.array([s.label for s in kept], dtype=np.int64),
                              probabilities[predicted], list(plan.dataset.class_names))
    record = _record(folder, plan, options, entries, [s.path for s, done in zip(plan.samples, predicted) if not done])
    record.sum_tolerance = sum_tolerance_for(predictions.probabilities, False, "the fold models")
    with staged(folder, exists="replace", files=["folds.csv", "evaluation.json", "predictions.csv"]) as stage:
        write_csv(stage.path / "folds.csv", ["path", "fold"],
                  ([s.path, int(f)] for s, f, done in zip(plan.samples, plan.fold_of, predicted) if done))
        write_evaluation_record(stage.path, record)
        write_predictions(stage.path / "predictions.csv", predictions)
    accuracy = float((predictions.predicted == predictions.labels).mean()) if kept else 0.0
    return CrossvalResult(folder, [run.path for run in runs], accuracy, len(kept))


def _record(folder: Path, plan: _Plan, options: CrossvalOptions, entries: list[dict[str, Any]], skipped: list[str]
            ) -> EvaluationRecord:
    dataset = plan.dataset
    return EvaluationRecord(
        name=folder.name, created=now(), model=f"cross-validation: {options.folds} runs, one per fold",
        list=display_path(dataset.list_path(plan.split)), class_names=list(dataset.class_names),
        dataset_root=str(dataset.root.resolve()), skipped=skipped, list_sha256=plan.sha256, list_version=plan.version,
        out_of_sample={"method": "stratified k-fold cross-validation (each row predicted by the run that held its "
                       "fold out)", "folds": options.folds, "seed": options.seed, "fold_file": "folds.csv",
                       "runs": entries})


def predict_holdout(run: RunFolder, dataset: Dataset, holdout: str, loaded: LoadedConfig, options: CrossvalOptions
                    ) -> tuple[list[str], np.ndarray, Path]:
    """A fold's held-out images through its run's ``best.pt``: ``(paths, probabilities (N, K), checkpoint)``.

    Images are decoded as training validates (:func:`train.data.loading.load_split`, no augmentation);
    unreadable ones follow the config's ``data.on_unreadable``.
    """
    import torch

    from networks import build_network
    from networks.checkpoint import checkpoint_network_config, load_weights, read_checkpoint
    from train.data.loading import iterate_batches, load_split
    from train.process.distributed import resolve_device

    path = run.checkpoint_path("best")
    checkpoint = read_checkpoint(path)
    if list(checkpoint["class_names"]) != list(dataset.class_names):
        raise UserError(f"{display_path(path)}: its classes are not those of {display_path(dataset.root)}")
    network_config = checkpoint_network_config(checkpoint, display_path(path))
    device = resolve_device(options.device)
    network = build_network(network_config)
    load_weights(network, checkpoint["model"], mode="strict", source=display_path(path))
    network = network.to(device).eval()
    split = load_split(dataset, holdout, network_config.input, loaded.config.data.on_unreadable, in_memory=True,
                       pack="off")
    chunks = []
    with torch.no_grad():
        for images, _ in iterate_batches(split, torch.arange(len(split)), options.batch_size, 0, False):
            logits = network(images.to(device))  # (B, K)
            chunks.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return [s.path for s in split.samples], np.concatenate(chunks), path

"""``pipenv run review``: find the images of a data set that need a person's decision.

Reads the data set's current lists and out-of-sample probabilities (a cross-validation
for ``train``, evaluations for ``val`` and ``test``; in-sample ones are refused:
:mod:`datatools.review.sources`), and finds likely label errors (cleanlab), exact and
near-duplicate images within and across lists (imagehash and a pixel check), and
unreadable or odd files (:mod:`datatools.review.findings`). Writes
``output/review/<ds>-<time>/``:

    review.html     every finding, most severe first: the image, its label, the suggested
                    label and score, its copy side by side
    decisions.csv   one row per finding with an empty action column (relabel:<class>, remove, keep)
    review.json     which list versions were reviewed, with what, and what was found
    thumbs/         the page's thumbnails

Torch-free: it runs on the evaluation machine. Nothing in the data set is changed;
``pipenv run prepare-data apply <decisions.csv>`` applies the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.files import file_sha256
from common.list_versions import current_lists, list_reference
from common.lists import Dataset, read_list
from common.paths import display_path, output_dir
from common.provenance import command_text, now, stamp
from common.staging import staged
from datatools.review.decisions import KINDS, Finding, ReviewRecord, write_review_files
from datatools.review.duplicates import MAX_DISTANCE, MIN_SIMILARITY, duplicate_pairs, fingerprints
from datatools.review.findings import duplicate_findings, file_findings, label_issues
from datatools.review.page import write_page
from datatools.review.sources import OutOfSample, load_out_of_sample


@dataclass(frozen=True)
class ReviewOptions:
    """What to review and how.

    Attributes:
        dataset: A data set under the data folder, or its path.
        probabilities: Evaluation or cross-validation folders (or their ``predictions.csv``); none: the newest
            cross-validation of this data set's current ``train`` list, if there is one.
        out: The review folder (default ``output/review/<ds>-<time>``); must not exist.
        max_distance: Largest perceptual-hash distance of a near-duplicate pair.
        min_similarity: Smallest 16x16 gray correlation of a near-duplicate pair.
        workers: Decoding threads (0: one per core).
    """

    dataset: str
    probabilities: tuple[Path, ...] = ()
    out: Path | None = None
    max_distance: int = MAX_DISTANCE
    min_similarity: float = MIN_SIMILARITY
    workers: int = 0


@dataclass
class ReviewResult:
    """What a review wrote.

    Attributes:
        folder: The review folder.
        findings: Every finding, most severe first (numbered from 1 in ``decisions.csv``).
        record: The content of ``review.json``.
    """

    folder: Path
    findings: list[Finding] = field(default_factory=list)
    record: ReviewRecord | None = None


def review_dataset(options: ReviewOptions) -> ReviewResult:
    """Review a data set: find label issues, duplicates, unreadable and odd files; write the review folder.

    Raises:
        UserError: For a missing data set or invalid lists, invalid thresholds, an existing ``out``, or
            probabilities that are in-sample, of another data set, or of another version of a list.
    """
    from common.digits import open_dataset_or_digits

    if not 0 <= options.max_distance <= 64 or not -1 <= options.min_similarity <= 1:
        raise UserError(f"--max-distance must be in 0..64 and --min-similarity in [-1, 1], got "
                        f"{options.max_distance} and {options.min_similarity}")
    dataset = open_dataset_or_digits(options.dataset)
    samples = {split: read_list(dataset, path) for split, path in current_lists(dataset.root).items()}
    if not samples:
        raise UserError(f"{display_path(dataset.root / 'lists')}: no list files to review")
    specs = list(options.probabilities) or newest_crossval(dataset)
    found = load_out_of_sample(dataset, specs)
    notes = coverage_notes(found, samples)
    findings = find_everything(dataset, samples, found, options, notes)
    record = _record(dataset, samples, found, findings, options, notes)
    folder = options.out or free_folder(output_dir() / "review" / f"{dataset.root.name}-{stamp()}")
    with staged(folder, exists="refuse", hint="choose another --out") as stage:
        write_review_files(stage.path, findings, dataset.class_names,
                           {split: entry["sha256"] for split, entry in record.lists.items()}, record)
        write_page(stage.path, dataset.root, findings, dataset.class_names, record)
    return ReviewResult(folder, findings, record)


def find_everything(dataset: Dataset, samples: dict[str, list], found: OutOfSample, options: ReviewOptions,
                    notes: list[str]) -> list[Finding]:
    """Every finding, most severe first."""
    from datatools.profile import odd_files, read_header

    splits: dict[str, list[str]] = {}
    labels: dict[str, int | None] = {}
    for split, listed in samples.items():
        for sample in listed:
            splits.setdefault(sample.path, []).append(split)
            labels[sample.path] = sample.label if labels.get(sample.path, sample.label) == sample.label else None
    paths = sorted(splits)
    prints = fingerprints(dataset.root, paths, options.workers)
    pairs = duplicate_pairs(prints, options.max_distance, options.min_similarity)
    headers = {path: header for path in prints.paths if (header := read_header(str(dataset.root / path)))}
    findings = label_issues(found, dataset.class_names, notes)
    findings += duplicate_findings(prints, pairs, splits, labels)
    findings += file_findings(prints.unreadable, odd_files(headers), splits, labels)
    return sorted(findings, key=Finding.rank)


def free_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` ... when taken (two reviews in one second)."""
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def newest_crossval(dataset: Dataset) -> list[Path]:
    """The newest cross-validation under ``output/crossval/`` of this data set's current ``train`` list, if any."""
    from common.results import read_evaluation_record

    train = dataset.list_path("train")
    digest = file_sha256(train) if train.is_file() else None
    candidates = []
    for folder in sorted((output_dir() / "crossval").glob("*/predictions.csv")):
        try:
            record = read_evaluation_record(folder.parent)
        except UserError:
            continue
        if (record is not None and record.out_of_sample and record.list_sha256 == digest and record.dataset_root
                and Path(record.dataset_root).resolve() == dataset.root.resolve()):
            candidates.append((record.created, folder.parent))
    return [max(candidates)[1]] if candidates else []


def coverage_notes(found: OutOfSample, samples: dict[str, list]) -> list[str]:
    """Which lists have no out-of-sample probabilities (so no label check)."""
    covered = set(found.splits)
    missing = [split for split in samples if split not in covered and split != "dev"]
    if not found.paths:
        return ["no out-of-sample probabilities: labels were not checked (cross-validate the train list with "
                "pipenv run crossval, evaluate val and test, and pass them with --probabilities)"]
    return [f"no out-of-sample probabilities for {', '.join(missing)}: their labels were not checked"] if missing else []


def _record(dataset: Dataset, samples: dict[str, list], found: OutOfSample, findings: list[Finding],
            options: ReviewOptions, notes: list[str]) -> ReviewRecord:
    lists = {}
    for split, path in current_lists(dataset.root).items():
        reference = list_reference(path)
        lists[split] = {"sha256": reference.sha256, "version": reference.version, "samples": len(samples[split])}
    counts = {kind: sum(f.kind == kind for f in findings) for kind in KINDS}
    counts["images"] = len({s.path for listed in samples.values() for s in listed})
    counts["with_probabilities"] = len(found.paths)
    return ReviewRecord(dataset=str(dataset.root.resolve()), created=now(), command=command_text(), lists=lists,
                        sources=found.sources, counts=counts, notes=notes,
                        settings={"max_distance": options.max_distance, "min_similarity": options.min_similarity})

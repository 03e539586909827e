"""``pipenv run prepare-data apply <decisions.csv>``: a review's decisions -> new versions of the lists.

Every decided row is checked first (:func:`datatools.review.decisions.read_decisions`:
a known list and path, a known class and action, the list unchanged since the review;
every problem with its line), then the new list files are published as new versions in
one atomic step (:func:`common.list_versions.commit`), with a ``CHANGES.jsonl`` entry
saying per image what changed and why. ``relabel`` and ``remove`` apply to every list
that holds the image (``dev`` follows ``train``); images are never deleted from
``raw/``; ``keep`` and undecided rows change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import file_sha256, read_text
from common.list_versions import Change, commit, current_lists
from common.lists import Dataset, dataset_root, load_dataset, normalise_path, read_list
from common.paths import data_dir, display_path
from common.provenance import command_text
from datatools.review.decisions import CurrentList, Decision, read_decisions, read_review_record


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_decisions` did (or would do, with ``dry_run``).

    Attributes:
        root: The data set folder.
        counts: ``relabelled``, ``removed``, ``kept``, ``undecided``.
        change: The list-history entry written (None when no list changed, or a dry run).
        lists: ``split -> samples after`` of every list that changes.
    """

    root: Path
    counts: dict[str, int]
    change: Change | None = None
    lists: dict[str, int] = field(default_factory=dict)


def apply_decisions(decisions_csv: Path, dataset: str | None = None, dry_run: bool = False) -> ApplyResult:
    """Apply a filled-in ``decisions.csv`` to its data set's lists.

    Args:
        decisions_csv: The review's decisions file.
        dataset: The data set (name or path); default: the one the ``review.json`` beside the file names.
        dry_run: Check everything and say what would change, without writing.

    Raises:
        UserError: For an unknown data set, a decisions file with bad rows (each with its line) or for another
            version of the lists, a change that would empty a list, or lists changed meanwhile.
    """
    path = Path(decisions_csv)
    root = _dataset_folder(path, dataset)
    data = load_dataset(root)
    files = current_lists(root)
    current = {split: CurrentList(file_sha256(file), {s.path: s.label for s in read_list(data, file)})
               for split, file in files.items()}
    decisions, undecided = read_decisions(path, data.class_names, current)
    texts, images, counts = new_lists(data, files, current, decisions)
    counts["undecided"] = undecided
    sizes = {split: len(_samples(text)) for split, text in texts.items()}
    if dry_run or not texts:
        return ApplyResult(root, counts, None, sizes)
    change = commit(root, texts, "apply", command_text(), f"review decisions {display_path(path)}", counts, images,
                    {split: current[split].sha256 for split in texts})
    return ApplyResult(root, counts, change, sizes)


def _dataset_folder(decisions_csv: Path, dataset: str | None) -> Path:
    if dataset:
        return dataset_root(dataset)
    record = read_review_record(decisions_csv.parent)
    if record is None:
        raise UserError(f"{display_path(decisions_csv)}: no review.json beside it to say which data set it is for; "
                        "name it with --dataset")
    named = Path(record.dataset)
    if not named.resolve().is_relative_to(data_dir().resolve()):  # a received review.json names only what it may
        raise UserError(f"{display_path(decisions_csv.parent / 'review.json')}: names the data set {named}, outside "
                        f"the data folder {display_path(data_dir())}; apply there only by naming it: --dataset "
                        f"{named}")
    return named


def new_lists(data: Dataset, files: dict[str, Path], current: dict[str, CurrentList], decisions: list[Decision]
              ) -> tuple[dict[str, str], list[dict[str, Any]], dict[str, int]]:
    """The changed lists' new text, what changed per image, and counts.

    Raises:
        UserError: When a list would be left without samples.
    """
    changes: dict[str, Decision] = {}
    images, counts = [], {"relabelled": 0, "removed": 0, "kept": 0}
    for decision in decisions:
        holding = [split for split, listed in current.items() if decision.path in listed.labels]
        old = current[decision.split].labels[decision.path]
        if decision.action == "keep" or (decision.action == "relabel" and decision.label == old):
            counts["kept"] += 1
            continue
        changes[decision.path] = decision
        counts["removed" if decision.action == "remove" else "relabelled"] += 1
        images.append({"path": decision.path, "lists": holding, "change": decision.action, "from":
                       data.class_names[old], "to": None if decision.label is None else data.class_names[decision.label],
                       "why": f"{decision.why} ({decision.where})"})
    touched = {split for split, listed in current.items() if any(path in listed.labels for path in changes)}
    texts = {split: rewrite(read_text(files[split]), changes) for split in sorted(touched)}
    empty = [split for split, text in texts.items() if not _samples(text)]
    if empty:
        raise UserError(f"these decisions would leave {', '.join(f'lists/{s}.txt' for s in empty)} without samples; "
                        "nothing was written; keep some of its images")
    return texts, images, counts


def rewrite(text: str, changes: dict[str, Decision]) -> str:
    """A list file's text with the decided images removed or relabelled; comments, order and the rest kept."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        fields = stripped.rsplit(maxsplit=1)
        decision = changes.get(normalise_path(fields[0]) or "") if stripped and not stripped.startswith("#") else None
        if decision is None:
            lines.append(line if line.endswith("\n") else line + "\n")
        elif decision.action == "relabel":
            lines.append(f"{fields[0]} {decision.label}\n")
    return "".join(lines)


def _samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]

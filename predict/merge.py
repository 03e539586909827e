"""``predict merge``: join the outputs of ``--shard i/n`` runs into the output one unsharded run writes.

The contract (docs/prediction.md, "Shards and merge"): every shard of one prediction
was made from the same inputs (the digest of the whole sorted input list), by the same
model (its sha256), with the same classes, top-k, format, thresholds and execution
providers, and is complete. Shard i holds every n-th input from the i-th; each
shard's rows are sorted by path, so the merge is a streaming merge by path (memory
bounded by the shards' count), and its rows are byte for byte those of the unsharded
run. Missing, duplicated, unfinished and foreign shards are refused before anything is
written; the merged folder is published whole.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from common.cli import check_plain_name
from common.errors import UserError
from common.paths import display_path
from common.provenance import now
from common.staging import refuse_foreign_target, staged
from predict.inputs import inputs_digest
from predict.output import RECORD_FILE, PredictionRecord, differences, output_folder, predictions_root, read_record
from predict.rows import Row, RowWriter, read_rows, read_unreadable
from predict.run import OVERWRITE_HINT, PredictResult, finish

CHUNK = 4096
"""Rows written per append while merging."""


def merge_shards(folders: Sequence[Path | str], name: str | None = None, overwrite: bool = False) -> PredictResult:
    """Merge shard outputs into ``output/predict/<name>/`` (default: the shards' base name).

    Args:
        folders: The shards' output folders (or their names under ``output/predict/``).
        name: The merged output's name.
        overwrite: Replace an existing merged output of that name.

    Raises:
        UserError: For a folder that is not a finished shard, shards of different
            models, inputs or settings, a shard missing or given twice, rows that do
            not add up to the inputs, or an existing output (without ``overwrite``).
    """
    shards = sorted(((output_folder(f), read_record(output_folder(f))) for f in folders),
                    key=lambda pair: pair[1].shard["index"] if pair[1].shard else -1)
    check_shards(shards)
    first = shards[0][1]
    base = name or first.base_name
    check_plain_name(base)
    target = predictions_root() / base
    if any(target.resolve() == folder.resolve() for folder, _ in shards):
        raise UserError(f"--name {base}: that is one of the shards; give the merged output another name")
    record = replace(first, name=base, created=now(), status="running", shard=None, images=first.inputs_count,
                     resumed=[], merged_from=[display_path(folder) for folder, _ in shards], summary=None)
    refuse_foreign_target(target, RECORD_FILE, "--name")
    with staged(target, exists="replace" if overwrite else "refuse", hint=OVERWRITE_HINT) as stage:
        writer = RowWriter(stage.path, record.format, record.top_k, record.class_names)
        counts = [0] * len(shards)
        merged = heapq.merge(*(_counted(folder, shard, counts, i) for i, (folder, shard) in enumerate(shards)),
                             key=lambda row: row.path)
        unreadable = sorted(entry for folder, _ in shards for entry in read_unreadable(folder))
        named = _write_merged(merged, writer, [path for path, _ in unreadable])
        writer.write_unreadable(unreadable)
        _check_counts(shards, counts, unreadable)
        if named != first.inputs_sha256:  # before any image is opened for the report
            raise UserError(f"the shards' rows name images other than their inputs (the digest of the paths they "
                            f"name is not the {first.inputs_sha256[:12]}... their records commit to): a shard was "
                            "changed after it was predicted; predict the shards again")
        summary = finish(stage.path, record, None)
    return PredictResult(stage.target, record, summary)


def check_shards(shards: list[tuple[Path, PredictionRecord]]) -> None:
    """Refuse anything but the complete set of finished shards of one prediction.

    Raises:
        UserError: Naming the folder concerned and what is wrong.
    """
    if not shards:
        raise UserError("predict merge: name the shard folders to merge (e.g. output/predict/<name>-shard-*)")
    for folder, record in shards:
        if record.shard is None:
            raise UserError(f"{display_path(folder)}: not a shard (it was predicted without --shard); nothing to "
                            "merge it with")
        if record.status != "complete":
            raise UserError(f"{display_path(folder)}: the shard is not finished (status {record.status}); finish it "
                            "with the same command and --resume, then merge")
    first_folder, first = shards[0]
    for folder, record in shards[1:]:
        changed = differences(first, record)
        if record.shard["count"] != first.shard["count"]:
            changed.append(f"shard count: {first.shard['count']} vs {record.shard['count']}")
        if changed:
            raise UserError(f"{display_path(folder)}: a foreign shard: it differs from {display_path(first_folder)} in "
                            f"{'; '.join(changed)}. Shards of one prediction share the model, the inputs and the "
                            "options")
    seen: dict[int, Path] = {}
    for folder, record in shards:
        index = record.shard["index"]
        if index in seen:
            raise UserError(f"{display_path(folder)} and {display_path(seen[index])} are both shard {index} of "
                            f"{record.shard['count']}; give each shard once")
        seen[index] = folder
    missing = sorted(set(range(first.shard["count"])) - set(seen))
    if missing:
        raise UserError(f"missing shard(s) {missing} of {first.shard['count']} (expected folders like "
                        f"{first.base_name}-shard-{missing[0]}-of-{first.shard['count']}); predict them with "
                        f"--shard {missing[0]}/{first.shard['count']}, then merge all {first.shard['count']}")


def _counted(folder: Path, record: PredictionRecord, counts: list[int], index: int) -> Iterator[Row]:
    for row in read_rows(folder, record.format, record.top_k, record.class_names):
        counts[index] += 1
        yield row


def _write_merged(rows: Iterator[Row], writer: RowWriter, unreadable: list[str]) -> str:
    """Write the merged rows in chunks; returns the digest of every path named (rows and ``unreadable``, sorted).

    Raises:
        UserError: When two shards hold a row for the same image.
    """
    chunk: list[Row] = []
    named = heapq.merge((row.path for row in _written(rows, chunk, writer)), unreadable)
    digest = inputs_digest(named)
    writer.write_rows(chunk)
    return digest


def _written(rows: Iterator[Row], chunk: list[Row], writer: RowWriter) -> Iterator[Row]:
    """``rows`` as they are written in chunks (the last chunk is left in ``chunk``)."""
    previous: str | None = None
    for row in rows:
        if row.path == previous:
            raise UserError(f"{row.path}: predicted in two shards; the shards do not split one input list")
        previous = row.path
        chunk.append(row)
        if len(chunk) >= CHUNK:
            writer.write_rows(chunk)
            chunk.clear()
        yield row


def _check_counts(shards: list[tuple[Path, PredictionRecord]], counts: list[int],
                  unreadable: list[tuple[str, str]]) -> None:
    """Each shard holds a row or an unreadable entry per image it was given.

    Raises:
        UserError: Naming the shard whose rows do not add up.
    """
    for (folder, record), rows in zip(shards, counts):
        missing = read_unreadable(folder)
        if rows + len(missing) != record.images:
            raise UserError(f"{display_path(folder)}: {rows:,} rows and {len(missing):,} unreadable image(s), but the "
                            f"shard was given {record.images:,} images; it is damaged: predict it again")
    if len({path for path, _ in unreadable}) != len(unreadable):
        raise UserError("an unreadable image is listed by two shards; the shards do not split one input list")

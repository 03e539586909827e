"""``report.html``: what a prediction decided, for review.

Counts per decided class (and the abstentions by top-1 class, with each class's
threshold), the abstained images, the unreadable files, and a gallery per decided
class (its most and least confident images), each image beside the network's input.
Thumbnails are drawn by the evaluation's code (:func:`common.thumbnails.write_thumbnails`,
reduced decodes, decompression bombs refused) from the rows' paths, which are the
files the run was given. Every name and path is escaped; the page opens from disk.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from common.contract import InputContract
from common.files import atomic_write_text
from common.html import link, page, table
from common.thumbnails import Thumbnails, write_thumbnails
from predict.output import REPORT_FILE, TO_LABEL_FILE, PredictionRecord
from predict.rows import ROWS_FILES, UNREADABLE_FILE, Row
from predict.summary import Summary

GALLERY_CLASSES = 50
"""Classes shown with a gallery (those with the most decided images); the table lists every class."""

UNREADABLE_SHOWN = 50
"""Unreadable files listed in the report (``unreadable.csv`` has them all)."""


def write_report(folder: Path, record: PredictionRecord, summary: Summary, contract: InputContract | None) -> None:
    """Write ``report.html`` and its ``thumbs/`` into ``folder`` (each image drawn once, however often shown)."""
    shown = sorted(summary.most_confident, key=lambda c: -summary.decided[summary.class_names[c]])[:GALLERY_CLASSES]
    galleries = [summary.abstained_examples, *(rows for c in shown for rows in (summary.most_confident[c],
                                                                                 summary.least_confident[c]))]
    keys: dict[str, str] = {}
    for row in (row for rows in galleries for row in rows):
        keys.setdefault(row.path, str(len(keys)))  # a safe file name per image
    thumbs = write_thumbnails(folder, {key: Path(path) for path, key in keys.items()}, contract)
    body = [_headline(record, summary), _links(record), "<h2>Per class</h2>", _class_table(record, summary),
            _abstained(summary, thumbs, keys), _unreadable(summary), "<h2>Decided images by class</h2>"]
    if len(shown) < len(summary.most_confident):
        body.append(f'<p class="muted">Galleries for the {len(shown)} classes with the most decided images; the '
                    "table above counts every class.</p>")
    for c in sorted(shown):
        name = summary.class_names[c]
        body.append(f"<h3>{escape(name)}: {summary.decided[name]:,} decided</h3><p>Most confident</p>"
                    f"{_grid(summary.most_confident[c], thumbs, keys)}<p>Least confident</p>"
                    f"{_grid(summary.least_confident[c], thumbs, keys)}")
    if not shown:
        body.append('<p class="muted">No image was decided.</p>')
    atomic_write_text(Path(folder) / REPORT_FILE, page(f"Predictions: {record.name}", "\n".join(body)))


def _headline(record: PredictionRecord, summary: Summary) -> str:
    source = record.decision.get("source") or {}
    if source.get("kind") == "evaluation":
        (kind, target), = source["target"].items()
        rule = (f"decided at the operating point of {source['evaluation']} for {kind} {target:g}: the top-1 class is "
                "decided when its probability reaches that class's threshold, else the image abstains")
    elif source.get("kind"):
        rule = (f"per-class thresholds from {source.get('file', 'the caller')}: below its class's threshold an "
                "image abstains")
    else:
        rule = "no thresholds: every top-1 class is decided"
    lines = [summary.sentence() + ".",
             f"Model {record.model} (sha256 {record.model_sha256[:12]}...), providers {', '.join(record.providers)}; "
             f"{rule}."]
    if record.resumed:
        lines.append("Resumed " + "; ".join(f"at {r['at']} with {r['done']:,} image(s) already done"
                                             for r in record.resumed) + ".")
    if record.merged_from:
        lines.append(f"Merged from {len(record.merged_from)} shards: {', '.join(record.merged_from)}.")
    return '<div class="headline">' + "".join(f"<p>{escape(line)}</p>" for line in lines) + "</div>"


def _links(record: PredictionRecord) -> str:
    files = [ROWS_FILES[record.format], UNREADABLE_FILE, "prediction.json"]
    files += [TO_LABEL_FILE] if record.rank else []
    return "<p>" + " &middot; ".join(link(name, name) for name in files) + "</p>"


def _class_table(record: PredictionRecord, summary: Summary) -> str:
    thresholds = record.decision.get("thresholds") or {}
    rows = []
    for index, name in enumerate(summary.class_names):
        value = thresholds.get(name, "-") if thresholds else "-"
        shown = "never (always abstains)" if value is None else (f"{value:.6g}" if value != "-" else "-")
        rows.append([name, index, f"{summary.decided[name]:,}", f"{summary.abstained[name]:,}", shown])
    rows.append(["all", "", f"{summary.decided_total:,}", f"{summary.abstained_total:,}", ""])
    return table(["class", "index", "decided", "abstained (its top-1 class)", "threshold"], rows)


def _abstained(summary: Summary, thumbs: Thumbnails, keys: dict[str, str]) -> str:
    if not summary.abstained_total:
        return "<h2>Abstained</h2><p>No image abstained.</p>"
    return (f"<h2>Abstained</h2><p>{summary.abstained_total:,} image(s) abstained: their top-1 probability was "
            "below that class's threshold. The most probable first:</p>"
            f"{_grid(summary.abstained_examples, thumbs, keys)}")


def _unreadable(summary: Summary) -> str:
    if not summary.unreadable:
        return ""
    rows = [[path, reason] for path, reason in summary.unreadable[:UNREADABLE_SHOWN]]
    more = len(summary.unreadable) - len(rows)
    note = f'<p class="muted">... and {more:,} more in {UNREADABLE_FILE}.</p>' if more > 0 else ""
    return (f"<h2>Unreadable</h2><p>{len(summary.unreadable):,} file(s) could not be decoded and have no row.</p>"
            f"{table(['path', 'reason'], rows, name_columns=2)}{note}")


def _grid(rows: list[Row], thumbs: Thumbnails, keys: dict[str, str]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    return '<div class="cases">' + "".join(_card(row, keys[row.path], thumbs) for row in rows) + "</div>"


def _card(row: Row, key: str, thumbs: Thumbnails) -> str:
    pictures = []
    for kind, files in (("file", thumbs.original), (f"network input {thumbs.input_size}", thumbs.network_input)):
        if key in files:
            pictures.append(f'<figure><img src="{escape(files[key], quote=True)}" alt="{escape(kind, quote=True)}">'
                            f"<figcaption>{escape(kind)}</figcaption></figure>")
    picture = (f'<div class="pair">{"".join(pictures)}</div>' if pictures
               else '<div class="muted">(image not available)</div>')
    ranked = ", ".join(f"{escape(name)} {p:.3f}" for name, p in zip(row.classes[:3], row.probabilities[:3]))
    verdict = "muted" if row.label is None else "good"
    return (f'<div class="case">{picture}<div class="path">{escape(row.path)}</div>'
            f'<div class="{verdict}">decision: <b>{escape(row.decision)}</b></div>'
            f'<div class="muted">{ranked}; margin {row.margin:.3f}</div></div>')

"""``review.html``: the findings, most severe first, each with its image and, for duplicates, the copy beside it.

Static and self-contained (``common.html``), thumbnails under ``thumbs/``
(``common.thumbnails``). Every class name, path and message is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from common.files import atomic_write_text
from common.html import link, page, table
from common.thumbnails import Thumbnails, write_thumbnails
from datatools.review.decisions import DECISIONS, KINDS, RECORD, Finding, ReviewRecord

MAX_CASES = 600
"""Cases drawn in the page (with thumbnails); every finding is in decisions.csv."""

TITLES = {"cross_split_duplicate": "Duplicates across lists (leaks)", "unreadable": "Unreadable files",
          "label_issue": "Likely label errors", "duplicate": "Duplicates within a list", "odd_file": "Odd files"}


def write_page(folder: Path, root: Path, findings: list[Finding], class_names: tuple[str, ...],
               record: ReviewRecord) -> None:
    """Write ``review.html`` and its thumbnails into the (staged) review folder.

    Args:
        folder: The review folder.
        root: The data set folder (the images).
        findings: Every finding, sorted (numbered from 1 in this order, as in decisions.csv).
        class_names: The data set's classes.
        record: The review's record (lists, sources, counts, notes).
    """
    shown = findings[:MAX_CASES]
    sources = {f"f{n}": root / f.path for n, f in enumerate(shown, start=1)}
    sources |= {f"f{n}-copy": root / f.duplicate_of for n, f in enumerate(shown, start=1) if f.duplicate_of}
    thumbs = write_thumbnails(folder, sources)
    sections = []
    for kind in KINDS:
        cases = [case_html(n, f, class_names, thumbs) for n, f in enumerate(shown, start=1) if f.kind == kind]
        if cases:
            sections.append(f'<h2 id="{kind}">{escape(TITLES[kind])} ({record.counts.get(kind, 0)})</h2>'
                            f'<div class="cases">{"".join(cases)}</div>')
    more = (f'<p class="muted">The first {MAX_CASES} of {len(findings)} findings are drawn here; every one is in '
            f"{escape(DECISIONS)}.</p>" if len(findings) > MAX_CASES else "")
    body = "".join([_summary(record, len(findings)), *sections, more])
    atomic_write_text(folder / "review.html", page(f"Review of {Path(record.dataset).name}", body))


def case_html(number: int, finding: Finding, class_names: tuple[str, ...], thumbs: Thumbnails) -> str:
    """One finding: the image (and its copy), the labels, the score, what was found."""
    def image(key: str, caption: str) -> str:
        src = thumbs.original.get(key)
        picture = (f'<img src="{escape(src, quote=True)}" alt="{escape(caption, quote=True)}">' if src
                   else '<div class="muted">no thumbnail</div>')
        return f"<figure>{picture}<figcaption>{escape(caption)}</figcaption></figure>"

    figures = image(f"f{number}", finding.split)
    if finding.duplicate_of:
        figures += image(f"f{number}-copy", f"copy in {finding.duplicate_split}")
    given = class_names[finding.given_label] if finding.given_label is not None else "?"
    lines = [f"<b>#{number}</b> {escape(finding.kind.replace('_', ' '))}",
             f'<div class="path">{escape(finding.path)}</div>', f"given label: <b>{escape(given)}</b>"]
    if finding.suggested_label is not None:
        lines.append(f"suggested: <b>{escape(class_names[finding.suggested_label])}</b> (label quality "
                     f"{finding.label_quality:.3f})")
    if finding.duplicate_of:
        lines.append(f'copy of <span class="path">{escape(finding.duplicate_of)}</span>')
    lines.append(f'<span class="muted">{escape(finding.detail)}</span>')
    return (f'<div class="case" id="finding-{number}"><div class="pair">{figures}</div>'
            + "".join(f"<div>{line}</div>" for line in lines) + "</div>")


def _summary(record: ReviewRecord, findings: int) -> str:
    counts = ", ".join(f"{record.counts.get(kind, 0)} {TITLES[kind].lower()}" for kind in KINDS)
    lists = [[split, f"v{entry['version']}" if entry.get("version") else "unversioned", entry.get("samples", ""),
              str(entry.get("sha256", ""))[:12]] for split, entry in record.lists.items()]
    sources = [[s["file"], s["kind"], s["list"], s["rows"]] for s in record.sources]
    parts = [f'<div class="headline"><p>{findings} findings: {escape(counts)}.</p>'
             f"<p>Decide in {escape(DECISIONS)} (the action column: relabel:&lt;class&gt;, remove or keep), then "
             f"<code>pipenv run prepare-data apply {escape(DECISIONS)}</code>.</p></div>",
             "<h2>Lists reviewed</h2>", table(["list", "version", "samples", "sha256"], lists),
             "<h2>Out-of-sample probabilities</h2>",
             table(["file", "kind", "list", "rows"], sources) if sources else
             '<p class="warn">none: no label check (give --probabilities)</p>']
    parts += [f'<p class="warn">{escape(note)}</p>' for note in record.notes]
    parts.append(f"<p>files: {link(DECISIONS, DECISIONS)}, {link(RECORD, RECORD)}</p>")
    return "".join(parts)

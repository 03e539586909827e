"""The bad-case report: the mistakes a model is surest of, and its shakiest successes.

Three lists: the most confident mistakes overall; the most confident mistakes of
each confusion pair (true -> predicted, the most frequent pairs first); and the least
confident correct predictions. Each case shows a thumbnail, the path, the true and
predicted classes and their scores. Written as ``bad_cases.html`` (all text
escaped), ``bad_cases.png`` (a grid of the most confident mistakes) and
``bad_cases.csv``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np

from common.files import atomic_write_text
from evaluate.html import link, page
from common.predictions import Predictions

THUMB_SIZE = 96


@dataclass(frozen=True)
class Case:
    """One sample in the report.

    Attributes:
        row: Its row in predictions.csv (0-based, header excluded).
        path: Image path relative to the data set folder.
        true: True class index.
        predicted: Predicted class index.
        predicted_score: Probability of the predicted class.
        true_score: Probability of the true class.
    """

    row: int
    path: str
    true: int
    predicted: int
    predicted_score: float
    true_score: float


@dataclass
class Selection:
    """The cases chosen for the report.

    Attributes:
        confident_mistakes: Wrong predictions, most confident first.
        by_pair: ``(true, predicted) -> cases``, the most frequent pairs first.
        pair_counts: Number of mistakes of each listed pair.
        unsure_correct: Correct predictions, least confident first.
    """

    confident_mistakes: list[Case]
    by_pair: dict[tuple[int, int], list[Case]]
    pair_counts: dict[tuple[int, int], int]
    unsure_correct: list[Case]

    def all_cases(self) -> list[Case]:
        """Every distinct case, in report order."""
        seen, out = set(), []
        for case in [*self.confident_mistakes, *(c for cases in self.by_pair.values() for c in cases),
                     *self.unsure_correct]:
            if case.row not in seen:
                seen.add(case.row)
                out.append(case)
        return out


def select_cases(predictions: Predictions, count: int = 24, per_pair: int = 3, max_pairs: int = 20) -> Selection:
    """Choose the cases (ties broken by row order, so the choice is reproducible)."""
    predicted = predictions.predicted
    rows = np.arange(len(predictions.labels))
    predicted_score = predictions.probabilities[rows, predicted]
    true_score = predictions.probabilities[rows, predictions.labels]

    def case(row: int) -> Case:
        return Case(int(row), predictions.paths[row], int(predictions.labels[row]), int(predicted[row]),
                    float(predicted_score[row]), float(true_score[row]))

    wrong = rows[predicted != predictions.labels]
    wrong = wrong[np.argsort(-predicted_score[wrong], kind="stable")]
    correct = rows[predicted == predictions.labels]
    correct = correct[np.argsort(predicted_score[correct], kind="stable")]
    pairs: dict[tuple[int, int], list[int]] = {}
    for row in wrong:  # already most confident first
        pairs.setdefault((int(predictions.labels[row]), int(predicted[row])), []).append(int(row))
    ranked = sorted(pairs.items(), key=lambda item: (-len(item[1]), item[0]))[:max_pairs]
    return Selection(
        confident_mistakes=[case(r) for r in wrong[:count]],
        by_pair={pair: [case(r) for r in members[:per_pair]] for pair, members in ranked},
        pair_counts={pair: len(members) for pair, members in ranked},
        unsure_correct=[case(r) for r in correct[:count]],
    )


def write_thumbnails(folder: Path, cases: list[Case], image_root: Path | None) -> dict[int, str]:
    """Thumbnails ``thumbs/<row>.png``; returns row -> relative path for those written."""
    from PIL import Image, ImageOps

    written: dict[int, str] = {}
    if image_root is None:
        return written
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    for case in cases:
        try:
            with Image.open(image_root / case.path) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
        except OSError:
            continue
        scale = THUMB_SIZE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
        image.save(folder / "thumbs" / f"{case.row}.png")
        written[case.row] = f"thumbs/{case.row}.png"
    return written


def case_html(case: Case, class_names: list[str], thumbs: dict[int, str], extra: str = "") -> str:
    """One case as an HTML card (text escaped; ``extra`` is appended as given, already escaped)."""
    src = thumbs.get(case.row)
    picture = (f'<img src="{escape(src, quote=True)}" alt="{escape(case.path, quote=True)}">' if src
               else '<div class="muted">(image not available)</div>')
    verdict = "good" if case.true == case.predicted else "bad"
    return (f'<div class="case">{picture}<div class="path">{escape(case.path)}</div>'
            f"<div>true: <b>{escape(class_names[case.true])}</b> ({case.true_score:.3f})</div>"
            f'<div class="{verdict}">predicted: <b>{escape(class_names[case.predicted])}</b> '
            f"({case.predicted_score:.3f})</div>{extra}</div>")


def write_bad_cases(folder: Path, predictions: Predictions, selection: Selection, image_root: Path | None
                    ) -> tuple[list[str], dict[int, str]]:
    """Write ``bad_cases.html``, ``bad_cases.png``, ``bad_cases.csv`` and ``thumbs/``.

    Returns:
        The files written, and row -> thumbnail path for the cases that have one.
    """
    names = predictions.class_names
    thumbs = write_thumbnails(folder, selection.all_cases(), image_root)

    def grid(cases: list[Case]) -> str:
        if not cases:
            return '<p class="muted">none</p>'
        return '<div class="cases">' + "".join(case_html(c, names, thumbs) for c in cases) + "</div>"

    pairs = "".join(
        f"<h3>{escape(names[t])} &rarr; {escape(names[p])}: {selection.pair_counts[(t, p)]} mistake(s)</h3>{grid(cases)}"
        for (t, p), cases in selection.by_pair.items()
    )
    note = "" if image_root else '<p class="muted">Images not found: thumbnails left out.</p>'
    body = (f"<p>{link('report.html', 'back to the report')} &middot; {link('bad_cases.csv', 'bad_cases.csv')}</p>"
            f"{note}<h2>Most confident mistakes</h2>{grid(selection.confident_mistakes)}"
            f"<h2>Most confident mistakes by confusion pair (true &rarr; predicted)</h2>{pairs or grid([])}"
            f"<h2>Least confident correct predictions</h2>{grid(selection.unsure_correct)}")
    atomic_write_text(folder / "bad_cases.html", page("Bad cases", body))
    _write_grid(folder / "bad_cases.png", selection.confident_mistakes, names, image_root)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["list", "path", "true_label", "true_class", "predicted_label", "predicted_class",
                     "predicted_score", "true_score"])
    rows = [("confident_mistake", c) for c in selection.confident_mistakes]
    rows += [("pair_mistake", c) for cases in selection.by_pair.values() for c in cases]
    rows += [("unsure_correct", c) for c in selection.unsure_correct]
    for kind, c in rows:
        writer.writerow([kind, c.path, c.true, names[c.true], c.predicted, names[c.predicted],
                         f"{c.predicted_score:.6g}", f"{c.true_score:.6g}"])
    atomic_write_text(folder / "bad_cases.csv", buffer.getvalue())
    files = ["bad_cases.html", "bad_cases.png", "bad_cases.csv"] + (["thumbs"] if thumbs else [])
    return files, thumbs


def _write_grid(path: Path, cases: list[Case], names: list[str], image_root: Path | None) -> None:
    from PIL import Image

    from common.plotting import pyplot

    plt = pyplot()
    shown = cases[:48]
    columns = 8
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), dpi=100, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, case in zip(axes.ravel(), shown):
        try:
            with Image.open(image_root / case.path) as opened:
                axis.imshow(np.asarray(opened.convert("RGB")), interpolation="nearest")
        except (OSError, TypeError):
            axis.text(0.5, 0.5, "n/a", ha="center", va="center")
        axis.set_title(f"{names[case.true]}\u2192{names[case.predicted]} {case.predicted_score:.2f}", fontsize=8)
    if not shown:
        axes[0][0].text(0, 0.5, "no mistakes", fontsize=12)
    figure.suptitle("Most confident mistakes (true\u2192predicted, score)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)

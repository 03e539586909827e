"""The bad-case report: the mistakes a model is surest of, and its shakiest successes.

Three lists: the most confident mistakes overall; the most confident mistakes of
each confusion pair (true -> predicted, the most frequent pairs first); and the least
confident correct predictions. Each case shows the image file and, beside it, the
network's input (the file decoded by :func:`common.images.load_image` at the input
contract's size, as inference saw it), the path, the true and predicted classes
with their scores, and the runner-up class with the margin (predicted score minus
runner-up score; ranking and ties as in :mod:`evaluate.metrics`). Written as
``bad_cases.html`` (all text escaped), ``bad_cases.png`` (a grid of the most
confident mistakes) and ``bad_cases.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np

from common.contract import InputContract
from common.files import atomic_write_text, write_csv
from common.html import link, page
from common.lists import resolve_image
from common.plotting import new_figure, safe_text, save_figure
from common.results import Predictions
from common.thumbnails import Thumbnails
from common.thumbnails import write_thumbnails as draw_thumbnails
from evaluate.metrics import top_two

log = logging.getLogger(__name__)



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
        runner_up: The best class after the predicted one.
        runner_up_score: Its probability.
    """

    row: int
    path: str
    true: int
    predicted: int
    predicted_score: float
    true_score: float
    runner_up: int
    runner_up_score: float

    @property
    def margin(self) -> float:
        """Predicted score minus runner-up score."""
        return self.predicted_score - self.runner_up_score


def build_cases(predictions: Predictions, rows: np.ndarray) -> list[Case]:
    """The cases of the given rows of ``predictions``."""
    rows = np.asarray(rows, dtype=np.int64)
    scores = predictions.probabilities[rows]
    predicted, runner_up = top_two(scores)
    picked = np.arange(len(rows))
    return [Case(int(row), predictions.paths[row], int(predictions.labels[row]), int(p), float(scores[i, p]),
                 float(scores[i, predictions.labels[row]]), int(r), float(scores[i, r]))
            for i, row, p, r in zip(picked, rows, predicted, runner_up)]


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
    wrong = rows[predicted != predictions.labels]
    wrong = wrong[np.argsort(-predicted_score[wrong], kind="stable")]
    correct = rows[predicted == predictions.labels]
    correct = correct[np.argsort(predicted_score[correct], kind="stable")]
    pairs: dict[tuple[int, int], list[int]] = {}
    for row in wrong:  # already most confident first
        pairs.setdefault((int(predictions.labels[row]), int(predicted[row])), []).append(int(row))
    ranked = sorted(pairs.items(), key=lambda item: (-len(item[1]), item[0]))[:max_pairs]
    return Selection(
        confident_mistakes=build_cases(predictions, wrong[:count]),
        by_pair={pair: build_cases(predictions, members[:per_pair]) for pair, members in ranked},
        pair_counts={pair: len(members) for pair, members in ranked},
        unsure_correct=build_cases(predictions, correct[:count]),
    )


def write_thumbnails(folder: Path, cases: list[Case], image_root: Path | None,
                     contract: InputContract | None = None, homes: Sequence[Path] = ()) -> Thumbnails:
    """Thumbnails of the cases' images (see :func:`common.thumbnails.write_thumbnails`), keyed by row.

    Only files inside the data set folder (or ``homes``) are drawn
    (:func:`common.lists.resolve_image`: symbolic links are followed before the check);
    a case whose image is outside gets none.

    Args:
        folder: The report folder.
        cases: The cases to draw.
        image_root: The data set folder the case paths are relative to, trusted (None: no thumbnails).
        contract: The model's input contract (None: no network-input images).
        homes: Other folders the images may lie in (a trusted ``--link symlink`` source).
    """
    sources: dict[int, Path] = {}
    for case in cases if image_root is not None else []:
        source = resolve_image(image_root, case.path, homes)
        if source is None:
            log.warning("no thumbnail for %s: it is not inside the data set folder %s", case.path, image_root)
        else:
            sources[case.row] = source
    return draw_thumbnails(folder, sources, contract)


def case_html(case: Case, class_names: list[str], thumbs: Thumbnails, extra: str = "") -> str:
    """One case as an HTML card (text escaped; ``extra`` is appended as given, already escaped)."""
    pictures = []
    for kind, files in (("file", thumbs.original), (f"network input {thumbs.input_size}", thumbs.network_input)):
        src = files.get(case.row)
        if src:
            pictures.append(f'<figure><img src="{escape(src, quote=True)}" alt="{kind}: '
                            f'{escape(case.path, quote=True)}"><figcaption>{kind}</figcaption></figure>')
    picture = (f'<div class="pair">{"".join(pictures)}</div>' if pictures
               else '<div class="muted">(image not available)</div>')
    verdict = "good" if case.true == case.predicted else "bad"
    return (f'<div class="case">{picture}<div class="path">{escape(case.path)}</div>'
            f"<div>true: <b>{escape(class_names[case.true])}</b> ({case.true_score:.3f})</div>"
            f'<div class="{verdict}">predicted: <b>{escape(class_names[case.predicted])}</b> '
            f"({case.predicted_score:.3f})</div>"
            f'<div class="muted">runner-up: {escape(class_names[case.runner_up])} ({case.runner_up_score:.3f}), '
            f"margin {case.margin:.3f}</div>{extra}</div>")


def write_bad_cases(folder: Path, predictions: Predictions, selection: Selection, image_root: Path | None,
                    contract: InputContract | None = None, homes: Sequence[Path] = ()
                    ) -> tuple[list[str], Thumbnails]:
    """Write ``bad_cases.html``, ``bad_cases.png``, ``bad_cases.csv`` and ``thumbs/``.

    Args:
        folder: The report folder.
        predictions: The predictions the cases come from.
        selection: The cases.
        image_root: The data set folder, trusted (None: no thumbnails).
        contract: The model's input contract (None: no network-input images).
        homes: Other folders the images may lie in (see :func:`write_thumbnails`).

    Returns:
        The files written, and the thumbnails of the cases that have them.
    """
    names = predictions.class_names
    thumbs = write_thumbnails(folder, selection.all_cases(), image_root, contract, homes)

    def grid(cases: list[Case]) -> str:
        if not cases:
            return '<p class="muted">none</p>'
        return '<div class="cases">' + "".join(case_html(c, names, thumbs) for c in cases) + "</div>"

    pairs = "".join(
        f"<h3>{escape(names[t])} &rarr; {escape(names[p])}: {selection.pair_counts[(t, p)]} mistake(s)</h3>{grid(cases)}"
        for (t, p), cases in selection.by_pair.items()
    )
    note = "" if image_root else '<p class="muted">Images not found: thumbnails left out.</p>'
    if image_root and contract is None:
        note = '<p class="muted">No input contract recorded: network inputs left out.</p>'
    body = (f"<p>{link('report.html', 'back to the report')} &middot; {link('bad_cases.csv', 'bad_cases.csv')}</p>"
            f"{note}<p>Each case: the image file, the network's input (decoded at the model's input size), "
            "the true and predicted classes with their scores, and the runner-up class with the margin.</p>"
            f"<h2>Most confident mistakes</h2>{grid(selection.confident_mistakes)}"
            f"<h2>Most confident mistakes by confusion pair (true &rarr; predicted)</h2>{pairs or grid([])}"
            f"<h2>Least confident correct predictions</h2>{grid(selection.unsure_correct)}")
    atomic_write_text(folder / "bad_cases.html", page("Bad cases", body))
    _write_grid(folder, selection.confident_mistakes, names, thumbs)
    rows = [("confident_mistake", c) for c in selection.confident_mistakes]
    rows += [("pair_mistake", c) for cases in selection.by_pair.values() for c in cases]
    rows += [("unsure_correct", c) for c in selection.unsure_correct]
    write_csv(folder / "bad_cases.csv",
              ["list", "path", "true_label", "true_class", "predicted_label", "predicted_class", "predicted_score",
               "true_score", "runner_up_label", "runner_up_class", "runner_up_score", "margin"],
              [[kind, c.path, c.true, names[c.true], c.predicted, names[c.predicted], f"{c.predicted_score:.6g}",
                f"{c.true_score:.6g}", c.runner_up, names[c.runner_up], f"{c.runner_up_score:.6g}",
                f"{c.margin:.6g}"] for kind, c in rows])
    files = ["bad_cases.html", "bad_cases.png", "bad_cases.csv"] + (["thumbs"] if thumbs.original else [])
    return files, thumbs


def _side_by_side(folder: Path, thumbs: Thumbnails, row: int) -> np.ndarray | None:
    """The file's thumbnail and the network input scaled to its height, as one RGB array ``(H, W, 3)``."""
    from PIL import Image

    if row not in thumbs.original:
        return None
    with Image.open(folder / thumbs.original[row]) as opened:
        original = opened.convert("RGB")
    parts = [np.asarray(original)]
    if row in thumbs.network_input:
        with Image.open(folder / thumbs.network_input[row]) as opened:
            seen = opened.convert("RGB")
        height = original.height
        width = max(1, round(seen.width * height / seen.height))
        parts += [np.full((height, 4, 3), 255, dtype=np.uint8),
                  np.asarray(seen.resize((width, height), Image.Resampling.NEAREST))]
    return np.concatenate(parts, axis=1)  # side by side along the width


def _write_grid(folder: Path, cases: list[Case], names: list[str], thumbs: Thumbnails) -> None:
    shown = cases[:48]
    columns = 6
    rows = max(1, -(-len(shown) // columns))
    figure = new_figure(columns * 2.2, rows * 1.9)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in panels:
        axis.axis("off")
    for axis, case in zip(panels, shown):
        image = _side_by_side(folder, thumbs, case.row)
        if image is None:
            axis.text(0.5, 0.5, "n/a", ha="center", va="center")
        else:
            axis.imshow(image, interpolation="nearest")
        axis.set_title(f"{safe_text(names[case.true], 16)}\u2192{safe_text(names[case.predicted], 16)} "
                       f"{case.predicted_score:.2f}", fontsize=8)
    if not shown:
        panels[0].text(0, 0.5, "no mistakes", fontsize=12)
    figure.suptitle("Most confident mistakes (true\u2192predicted, score): the file, then the network input",
                    fontsize=10)
    save_figure(figure, folder / "bad_cases.png")

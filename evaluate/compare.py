"""``compare()``: two evaluations of the same list, side by side.

Writes ``output/eval/compare-<A>-vs-<B>/``: ``compare.json`` and ``compare.txt``
(the verdict of :mod:`evaluate.verdict` first: is B different from A at 95%, by
McNemar's exact test and a paired bootstrap; then the deltas, B minus A, of every
figure of :mod:`evaluate.figures` that gives them, overall and per class),
``pr_overlay.png`` + ``pr_overlay.csv`` (micro and macro PR curves of both),
``flips.csv`` and ``compare.html`` (the verdict, then the samples that flipped:
fixed = wrong in A and right in B, broken = right in A and wrong in B, with
thumbnails).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import check_plain_name
from common.errors import UserError
from common.files import atomic_write_text, write_csv, write_json
from common.paths import display_path
from common.plotting import new_figure, safe_text, save_figure
from common.results import EvaluationRecord, Predictions, read_results
from common.staging import refuse_foreign_target, staged
from common.thumbnails import Thumbnails
from evaluate.badcases import Case, build_cases, case_html, write_thumbnails
from evaluate.evaluation import (
    OVERWRITE_HINT,
    check_bootstrap,
    check_resampling,
    check_same_classes,
    evaluations_root,
    image_source,
)

SUMMARY = "compare.json"
"""The file every comparison folder holds; an existing folder without it is never replaced."""
from common.html import figure, link, page, table
from evaluate.figures.average_precision import AveragePrecision
from evaluate.plots import decimate
from evaluate.scoring import Scores, score
from evaluate.verdict import verdict


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare` wrote.

    Attributes:
        folder: The output folder.
        summary: The content of ``compare.json``.
    """

    folder: Path
    summary: dict[str, Any]


def compare_evaluations(a: Path, b: Path, name: str | None = None, overwrite: bool = False, bootstrap: int = 1000,
                        seed: int = 0, image_roots: tuple[Path, ...] = ()) -> CompareResult:
    """Compare two evaluation folders (or names under ``output/eval/``) of the same list.

    Args:
        a: Evaluation A (the reference).
        b: Evaluation B (the candidate).
        name: Output folder name (default ``compare-<A>-vs-<B>``).
        overwrite: Replace an existing output folder.
        bootstrap: Paired-bootstrap resamples for the verdicts of the bootstrapped figures (0: none).
        seed: Seed of the resampling.
        image_roots: Folders the user named (``--image-root``) that thumbnails may be read from.

    Raises:
        UserError: When either has no usable predictions.csv (every problem of a
            damaged one with its row), they are not of the same samples, labels and
            classes, ``bootstrap`` or ``seed`` is negative, ``name`` is not a plain
            folder name, or the output folder exists and is not a comparison.
    """
    check_resampling(bootstrap, seed)
    check_plain_name(name)
    folder_a, folder_b = _folder(a), _folder(b)
    pred_a, record_a = read_results(folder_a / "predictions.csv")
    pred_b, record_b = read_results(folder_b / "predictions.csv")
    warnings = list_version_warnings(record_a, record_b)
    try:
        pred_b = _aligned(pred_a, pred_b, folder_a, folder_b)
    except UserError as exc:
        raise UserError(" ".join([str(exc), *warnings])) from None
    check_bootstrap(bootstrap, len(pred_a.paths), len(pred_a.class_names), models=2)
    target = evaluations_root() / (name or f"compare-{folder_a.name}-vs-{folder_b.name}")
    check_plain_name(target.name, "--name (default compare-<A>-vs-<B>)")
    refuse_foreign_target(target, SUMMARY, "--name")
    scores_a = score(pred_a.labels, pred_a.probabilities, pred_a.class_names)
    scores_b = score(pred_b.labels, pred_b.probabilities, pred_b.class_names)
    right_a = scores_a.predicted == pred_a.labels
    right_b = scores_b.predicted == pred_b.labels
    fixed = np.flatnonzero(~right_a & right_b)
    broken = np.flatnonzero(right_a & ~right_b)
    tests = verdict(scores_a, scores_b, bootstrap, seed)
    summary = {
        "a": display_path(folder_a), "b": display_path(folder_b), "samples": len(pred_a.paths),
        "sentences": tests.sentences(), "warnings": warnings, "verdict": tests.to_json(),
        "deltas": deltas(scores_a, scores_b), "fixed": len(fixed), "broken": len(broken),
        "convention": "delta = B - A; fixed = wrong in A, right in B; broken = right in A, wrong in B",
    }
    with staged(target, exists="replace" if overwrite else "refuse", hint=OVERWRITE_HINT) as stage:
        write_json(stage.path / SUMMARY, summary)
        atomic_write_text(stage.path / "compare.txt", compare_text(summary))
        _overlay(stage.path, scores_a, scores_b, folder_a.name, folder_b.name)
        cases = {"fixed": build_cases(pred_b, fixed), "broken": build_cases(pred_b, broken)}
        _flips_csv(stage.path, pred_a, pred_b, cases)
        root, contract, homes = image_source(record_a, image_roots)
        if root is None:
            root, contract, homes = image_source(record_b, image_roots)
        thumbs = write_thumbnails(stage.path, [c for group in cases.values() for c in group], root, contract, homes)
        _html(stage.path, summary, cases, pred_b.class_names, thumbs, pred_a, folder_a.name, folder_b.name)
    return CompareResult(target, summary)


def list_version_warnings(a: EvaluationRecord | None, b: EvaluationRecord | None) -> list[str]:
    """A sentence when the two evaluations read different versions of their list (by the sha256 each recorded)."""
    if a is None or b is None or not a.list_sha256 or not b.list_sha256 or a.list_sha256 == b.list_sha256:
        return []

    def named(record: EvaluationRecord) -> str:
        version = f"v{record.list_version}" if record.list_version else f"sha256 {record.list_sha256[:8]}"
        return f"{record.list} {version}"

    return [f"warning: A evaluated {named(a)} but B evaluated {named(b)}: the list changed between the two "
            "evaluations (see the data set's lists/CHANGES.jsonl), so differences may come from the data, not the "
            "models; evaluate both on the same version"]


def _folder(spec: Path) -> Path:
    for candidate in (Path(spec), evaluations_root() / str(spec)):
        if (candidate / "predictions.csv").is_file():
            return candidate
    raise UserError(f"{spec}: not an evaluation folder (no predictions.csv); evaluations live in "
                    f"{display_path(evaluations_root())}")


def _aligned(a: Predictions, b: Predictions, folder_a: Path, folder_b: Path) -> Predictions:
    check_same_classes(b.class_names, a.class_names, display_path(folder_b), display_path(folder_a))
    index_b = {path: i for i, path in enumerate(b.paths)}
    missing = [p for p in a.paths if p not in index_b]
    if missing or len(a.paths) != len(b.paths):
        example = missing[0] if missing else next(p for p in b.paths if p not in set(a.paths))
        raise UserError(f"{display_path(folder_a)} and {display_path(folder_b)} are not of the same samples "
                        f"(e.g. {example!r} is in only one); compare evaluations of the same list")
    order = np.array([index_b[p] for p in a.paths])
    labels_b = b.labels[order]
    differ = np.flatnonzero(labels_b != a.labels)
    if len(differ):
        raise UserError(f"{a.paths[differ[0]]!r} has label {a.labels[differ[0]]} in {display_path(folder_a)} but "
                        f"{labels_b[differ[0]]} in {display_path(folder_b)}; compare evaluations of the same list")
    return Predictions(list(a.paths), labels_b, b.probabilities[order], b.class_names)


def deltas(a: Scores, b: Scores) -> dict[str, Any]:
    """``compare.json``'s ``deltas``: each figure's rows (``{"a", "b", "delta"}``), then ``per_class``."""
    out: dict[str, Any] = {}
    per_class: list[dict[str, Any]] = [{"class": name} for name in a.class_names]
    for kind, value in a.items():
        other = b.get(kind.name)
        out.update({delta.key: delta.to_json() for delta in kind.deltas(value, other)})
        for key, values_a, values_b in kind.class_deltas(value, other):
            for row, va, vb in zip(per_class, values_a, values_b):
                row[key] = {"a": float(va), "b": float(vb), "delta": float(vb - va)}
    out["per_class"] = per_class
    return out


def _class_figures(summary: dict[str, Any]) -> list[str]:
    """The figures in ``deltas.per_class`` (every key but ``class``)."""
    rows = summary["deltas"]["per_class"]
    return [key for key in rows[0] if key != "class"] if rows else []


def compare_text(summary: dict[str, Any]) -> str:
    """``compare.txt`` from ``compare.json``'s content: the verdict, the metric deltas, per class, the flips."""
    lines = [*summary["sentences"], *summary.get("warnings", []), "", f"A: {summary['a']}", f"B: {summary['b']}",
             f"samples: {summary['samples']}", "",
             f"{'metric':<20}{'A':>10}{'B':>10}{'B - A':>10}"]
    for key, value in summary["deltas"].items():
        if key != "per_class":
            lines.append(f"{key:<20}{value['a']:>10.4f}{value['b']:>10.4f}{value['delta']:>+10.4f}")
    widths = {key: max(9, len(key) + 4) for key in _class_figures(summary)}
    header = "".join(f"{f'{k} A':>{w}}{f'{k} B':>{w}}{f'd{k}':>{w}}" for k, w in widths.items())
    lines += ["", f"{'class':<12}{header}"]
    for row in summary["deltas"]["per_class"]:
        lines.append(f"{row['class']:<12}" + "".join(
            f"{row[k]['a']:>{w}.4f}{row[k]['b']:>{w}.4f}{row[k]['delta']:>+{w}.4f}" for k, w in widths.items()))
    lines += ["", f"fixed (wrong in A, right in B): {summary['fixed']}",
              f"broken (right in A, wrong in B): {summary['broken']}", ""]
    return "\n".join(lines)


def _overlay(folder: Path, scores_a: Scores, scores_b: Scores, name_a: str, name_b: str) -> None:
    overlay = new_figure(11, 5, dpi=110)
    rows = []
    for axis, curve_name in zip(overlay.subplots(1, 2), ("micro", "macro")):
        for label, scores, style in ((f"A {safe_text(name_a, 60)}", scores_a, "-"),
                                     (f"B {safe_text(name_b, 60)}", scores_b, "--")):
            curve = decimate(scores.curves[curve_name])
            recall, precision = curve.recall, curve.precision
            average = getattr(scores.get(AveragePrecision).averages, curve_name)
            axis.plot(recall, precision, style, label=f"{label} (AP {average:.3f})")
            rows += [[label[0], curve_name, f"{r:.6g}", f"{p:.6g}"] for r, p in zip(recall, precision)]
        axis.set(title=f"{curve_name} average PR curve", xlabel="recall", ylabel="precision", xlim=(0, 1.01),
                 ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower left")
    save_figure(overlay, folder / "pr_overlay.png")
    write_csv(folder / "pr_overlay.csv", ["evaluation", "curve", "recall", "precision"], rows)


def _flips_csv(folder: Path, pred_a: Predictions, pred_b: Predictions, cases: dict[str, list[Case]]) -> None:
    rows = []
    for kind, group in cases.items():
        for case in group:
            predicted_a = int(pred_a.probabilities[case.row].argmax())
            rows.append([kind, case.path, case.true, predicted_a, f"{pred_a.probabilities[case.row, predicted_a]:.6g}",
                         case.predicted, f"{case.predicted_score:.6g}"])
    write_csv(folder / "flips.csv", ["flip", "path", "true_label", "predicted_a", "score_a", "predicted_b", "score_b"],
              rows)


def _html(folder: Path, summary: dict[str, Any], cases: dict[str, list[Case]], names: list[str],
          thumbs: Thumbnails, pred_a: Predictions, name_a: str, name_b: str) -> None:
    def cells(item: dict[str, float]) -> list[str]:
        return [f"{item['a']:.4f}", f"{item['b']:.4f}", f"{item['delta']:+.4f}"]

    rows = [[key, *cells(v)] for key, v in summary["deltas"].items() if key != "per_class"]
    keys = _class_figures(summary)
    per_class = [[row["class"], *(cell for key in keys for cell in cells(row[key]))]
                 for row in summary["deltas"]["per_class"]]

    def grid(group: list[Case]) -> str:
        if not group:
            return '<p class="muted">none</p>'
        cards = []
        for case in group:
            was = int(pred_a.probabilities[case.row].argmax())
            cards.append(case_html(case, names, thumbs, f'<div class="muted">A predicted {escape(names[was])}</div>'))
        return '<div class="cases">' + "".join(cards) + "</div>"

    sentences = "".join(f"<p>{escape(s)}</p>" for s in summary["sentences"])
    sentences += "".join(f'<p class="warn">{escape(s)}</p>' for s in summary["warnings"])
    body = "".join([
        f'<div class="headline">{sentences}</div>',
        table(["", "evaluation"], [["A", f"{name_a} ({summary['a']})"], ["B", f"{name_b} ({summary['b']})"],
                                   ["samples", summary["samples"]]]),
        "<h2>Metrics (delta = B - A)</h2>", table(["metric", "A", "B", "B - A"], rows),
        table(["class", *(f"{n} {k}" for n in keys for k in ("A", "B", "B - A"))], per_class),
        "<h2>Precision-recall curves</h2>", figure("pr_overlay.png", "micro and macro PR curves of A and B"),
        f"<h2>Fixed: wrong in A, right in B ({summary['fixed']})</h2>", grid(cases["fixed"]),
        f"<h2>Broken: right in A, wrong in B ({summary['broken']})</h2>", grid(cases["broken"]),
        f"<p>data: {link('compare.json', 'compare.json')}, {link('flips.csv', 'flips.csv')}, "
        f"{link('pr_overlay.csv', 'pr_overlay.csv')}</p>",
    ])
    atomic_write_text(folder / "compare.html", page(f"Comparison: {name_a} vs {name_b}", body))

"""Bad inputs and faults for evaluate, prepare-data, inspect-data and training's command-line overrides.

Every bad input is one row of a table: the command line (and the damage done to a
file first), and what the one-line error must name (the option, the file and line
or row, the key). Each row asserts exit status 2, that message, no traceback, and
that everything already written (evaluations, data sets, other files) keeps its
bytes. Faults follow: a full disk, no permission, a read-only disk and a file size
limit, decompression bombs with a memory bound, symbolic links out of the data set,
and SIGKILL at a random moment. docs/robustness.md lists what is checked where.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from common.cli import run_main
from common.errors import UserError
from common.files import canonical_hash, read_csv
from common.images import UnreadableImageError, decode_image
from common.limits import cores
from common.model_card import CARD_KEY
from common.paths import PROJECT_ROOT
from evaluate.evaluation import EvaluateOptions, check_bootstrap, evaluate
from tests.commands import command_line, command_main
from tests.evaluate.conftest import centroid_model
from tests.image_files import write_blank_png


@dataclass(frozen=True)
class Corpus:
    """Made once per session: the digits, a model of them, and two evaluations of its test split.

    Attributes:
        digits: The bundled digits data set.
        model: A nearest-class-mean ONNX model with its card.
        evaluations: A folder holding evaluations ``good`` and ``twin`` (same model, same list).
        bombs: Tiny PNG files of 13000 x 13000 pixels: ``L`` and ``RGB``.
    """

    digits: Path
    model: Path
    evaluations: Path
    bombs: dict[str, Path]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> Corpus:
    base = tmp_path_factory.mktemp("robustness")
    model = centroid_model(base / "centroids.onnx", digits_root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMAGEPIPE_OUTPUT", str(base / "output"))
        for name in ("good", "twin"):
            evaluate(EvaluateOptions(model=model, list=digits_root / "lists" / "test.txt", name=name, bootstrap=0,
                                     progress=False))
    bombs = {mode: write_blank_png(base / f"bomb-{mode}.png", 13000, 13000, mode) for mode in ("L", "RGB")}
    return Corpus(digits_root, model, base / "output" / "eval", bombs)


@dataclass
class Workspace:
    """One test's folders: an output folder holding copies of the evaluations, and a tiny data set.

    Attributes:
        corpus: The session's corpus.
        tmp: The test's temporary folder (everything in it is checked for changes).
        output: ``$IMAGEPIPE_OUTPUT``.
        data: ``$IMAGEPIPE_DATA``.
        tiny: A data set ``<tmp>/tiny`` of 20 digits (two per class), ``lists/test.txt`` listing them.
    """

    corpus: Corpus
    tmp: Path
    output: Path
    data: Path
    tiny: Path

    @property
    def good(self) -> Path:
        """The evaluation ``good`` (a copy, in this test's output folder)."""
        return self.output / "eval" / "good"

    @property
    def tiny_list(self) -> Path:
        """The tiny data set's test list."""
        return self.tiny / "lists" / "test.txt"

    def evaluate_tiny(self, *extra: str) -> list[str]:
        """``evaluate`` of the corpus model on the tiny list, with ``extra`` arguments."""
        return ["--model", str(self.corpus.model), "--list", str(self.tiny_list), "--no-progress", "--bootstrap",
                "0", *extra]


@pytest.fixture
def ws(corpus: Corpus, tmp_path: Path) -> Workspace:
    output, data = Path(os.environ["IMAGEPIPE_OUTPUT"]), Path(os.environ["IMAGEPIPE_DATA"])
    shutil.copytree(corpus.evaluations, output / "eval")
    tiny = tmp_path / "tiny"
    (tiny / "lists").mkdir(parents=True)
    shutil.copy(corpus.digits / "classes.txt", tiny / "classes.txt")
    lines = []
    for digit in range(10):
        for image in sorted((corpus.digits / "raw" / str(digit)).iterdir())[:2]:
            (tiny / "raw" / str(digit)).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, tiny / "raw" / str(digit) / image.name)
            lines.append(f"raw/{digit}/{image.name} {digit}\n")
    (tiny / "lists" / "test.txt").write_text("".join(lines))
    return Workspace(corpus, tmp_path, output, data, tiny)


def snapshot(ws: Workspace) -> dict[str, bytes]:
    """Every file under the test's folders, by path, with its bytes (links by their target)."""
    found = {}
    for top in (ws.tmp, ws.output, ws.data):
        for path in sorted(top.rglob("*")) if top.exists() else []:
            if path.is_symlink():
                found[str(path)] = os.readlink(path).encode()
            elif path.is_file():
                found[str(path)] = path.read_bytes()
            else:
                found[str(path)] = b"<folder>"
    return found


def run_command(command: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run a command in this process as its entry point does; ``(exit status, stderr)``."""
    main = command_main(command)
    capsys.readouterr()
    try:
        status = run_main(main, argv)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    return status, capsys.readouterr().err


def run_subprocess(command: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m <command's module>`` with this test's folders."""
    return subprocess.run(command_line(command, *argv), cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, env=os.environ.copy(), **kwargs)


# -- damage done to files before a command runs ------------------------------------------------------------------

def edit_predictions(folder: Path, change: Callable[[list[list[str]]], None]) -> None:
    """Rewrite ``<folder>/predictions.csv`` after ``change`` edited its rows (header first)."""
    path = folder / "predictions.csv"
    rows = list(csv.reader(path.open(newline="")))
    change(rows)
    with path.open("w", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows(rows)


def edit_record(folder: Path, change: Callable[[dict], None]) -> None:
    """Rewrite ``<folder>/evaluation.json`` after ``change`` edited it."""
    path = folder / "evaluation.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def set_row(row: int, **values: str) -> Callable[[list[list[str]]], None]:
    """A change of ``predictions.csv`` setting fields of one row (1 = the first after the header)."""
    def change(rows: list[list[str]]) -> None:
        header = rows[0]
        for column, value in values.items():
            rows[row][header.index(column.replace("__", ":"))] = value
    return change


def scores(row: list[str], *values: float) -> None:
    """Set a row's first scores to ``values`` and the rest to 0."""
    row[3:] = [str(v) for v in values] + ["0"] * (len(row) - 3 - len(values))


def add_list_line(ws: Workspace, line: str) -> None:
    """Append a line to the tiny data set's test list."""
    with ws.tiny_list.open("a", encoding="utf-8") as stream:
        stream.write(line)


def foreign_folder(path: Path) -> None:
    """A folder some other command (or person) wrote."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("mine, not an output of this command\n")


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        command: ``evaluate``, ``prepare-data``, ``inspect-data`` or ``train``.
        argv: The command line, given the workspace.
        says: What the error message must hold (the option or key, the file and its line or row).
        setup: Damage done first, given the workspace.
    """

    command: str
    argv: Callable[[Workspace], list[str]]
    says: tuple[str, ...]
    setup: Callable[[Workspace], None] | None = None


def score(ws: Workspace, folder: str = "good", *extra: str) -> list[str]:
    """``evaluate score`` of an evaluation's predictions.csv."""
    return ["score", str(ws.output / "eval" / folder / "predictions.csv"), "--bootstrap", "0", *extra]


def damage(change: Callable[[list[list[str]]], None], folder: str = "good") -> Callable[[Workspace], None]:
    return lambda ws: edit_predictions(ws.output / "eval" / folder, change)


def swap_first_rows(rows: list[list[str]]) -> None:
    rows[2] = list(rows[1])  # row 3 repeats row 2's path


def two_scores(rows: list[list[str]]) -> None:
    rows[0].append(rows[0][3])  # score:0 twice
    for row in rows[1:]:
        row.append("0")


def extra_column(rows: list[list[str]]) -> None:
    rows[0].append("note")
    for row in rows[1:]:
        row.append("x")


def drop_last_class(rows: list[list[str]]) -> None:
    for row in rows:
        del row[-1]
    for row in rows[1:]:
        scores(row, 1.0)
        row[1:3] = ["0", "0"]


def rename_class(rows: list[list[str]]) -> None:
    rows[0][3] = "score:zero"


def probabilities_out_of_range(rows: list[list[str]]) -> None:
    scores(rows[1], -5, 7.5)
    rows[1][2] = "1"


def logits(rows: list[list[str]]) -> None:
    scores(rows[5], 0.9, 0.3)
    rows[5][2] = "0"


def not_utf8(ws: Workspace) -> None:
    path = ws.good / "predictions.csv"
    path.write_bytes(path.read_bytes().replace(b"raw/", b"r\xe9w/", 1))


def bomb_in_tiny(ws: Workspace) -> None:
    shutil.copy(ws.corpus.bombs["L"], ws.tiny / "raw" / "bomb.png")
    add_list_line(ws, "raw/bomb.png 3\n")


def deep_image_in_tiny(ws: Workspace) -> None:
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)).save(ws.tiny / "raw" / "deep.tiff")
    add_list_line(ws, "raw/deep.tiff 3\n")


def shorter_twin(rows: list[list[str]]) -> None:
    del rows[-1]


def many_classes(rows: list[list[str]]) -> None:
    rows[0] += [f"score:extra{k}" for k in range(20_000 - 10)]  # 20,000 classes: a K x K matrix of 3.2 GB


def long_field(rows: list[list[str]]) -> None:
    rows[1][0] = "raw/" + "x" * 200_000 + ".png"


def deeply_nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def altered_model(ws: Workspace, card_change: Callable[[dict], None] | None = None,
                  graph_change: Callable[[onnx.GraphProto], None] | None = None) -> Path:
    """A copy of the corpus model (without its sidecar) whose card or graph was changed."""
    model = onnx.load(str(ws.corpus.model))
    entry = next(e for e in model.metadata_props if e.key == CARD_KEY)
    card = json.loads(entry.value)
    if card_change:
        card_change(card)
    entry.value = json.dumps(card)
    if graph_change:
        graph_change(model.graph)
    path = ws.tmp / "altered.onnx"
    onnx.save(model, str(path))
    return path


def evaluate_altered(ws: Workspace) -> list[str]:
    """``evaluate`` of the model :func:`altered_model` wrote, on the tiny list."""
    return ws.evaluate_tiny("--model", str(ws.tmp / "altered.onnx"))


def nine_class_names(card: dict) -> None:
    card["class_names"] = card["class_names"][:9]


def huge_input(card: dict) -> None:
    for contract in (card["input"]["contract"], card["network"]["config"]["input"]):
        contract.update(height=20_000, width=20_000)
    card["network"]["hash"] = canonical_hash(card["network"]["config"])  # consistent, as a forger would make it


def one_row_for_any_batch(graph: onnx.GraphProto) -> None:
    """The probabilities averaged over the batch: (1, K) whatever B is (the declared shape says (batch, K))."""
    softmax = next(node for node in graph.node if node.op_type == "Softmax")
    softmax.output[0] = "every_row"
    graph.initializer.append(onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), "batch_axis"))
    graph.node.append(onnx.helper.make_node("ReduceMean", ["every_row", "batch_axis"], ["probabilities"], keepdims=1))


def reshape_that_fails(graph: onnx.GraphProto) -> None:
    shape = next(tensor for tensor in graph.initializer if tensor.name == "flat_shape")
    shape.CopyFrom(onnx.numpy_helper.from_array(np.array([7, -1], dtype=np.int64), "flat_shape"))


ALIAS_BOMB = "x=[" + ", ".join(f"&{a} [" + ",".join([f"*{b}"] * 9 if b else ["1"] * 9) + "]" for a, b in
                               zip("abcdefg", [None, *"abcdef"])) + "]"
"""A YAML value of 9^7 (4.8 million) elements once its aliases are expanded, a few hundred characters long."""


CASES: dict[str, Case] = {
    # evaluate: options, models, list files and images
    "evaluate: model missing": Case("evaluate", lambda ws: ws.evaluate_tiny("--model", str(ws.tmp / "nope.onnx")),
                                    ("nope.onnx", "model not found")),
    "evaluate: model not ONNX": Case("evaluate", lambda ws: ws.evaluate_tiny("--model", str(ws.tmp / "junk.onnx")),
                                     ("junk.onnx", "not a loadable ONNX model"),
                                     lambda ws: (ws.tmp / "junk.onnx").write_text("not a model")),
    "evaluate: list outside lists/": Case("evaluate", lambda ws: ws.evaluate_tiny("--list", str(ws.tiny / "s.txt")),
                                          ("s.txt", "<data set>/lists/"),
                                          lambda ws: shutil.copy(ws.tiny_list, ws.tiny / "s.txt")),
    "evaluate: BOM list, Arabic-Indic label": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:1:", "label '\u0661' is not a class index"),
        lambda ws: ws.tiny_list.write_text("\ufeffraw/1/" + sorted((ws.tiny / "raw" / "1").iterdir())[0].name
                                           + " \u0661\n", encoding="utf-8")),
    "evaluate: list path leaving the data set": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:21:", "'../../../etc/passwd' leaves the data set"),
        lambda ws: add_list_line(ws, "../../../etc/passwd 0\n")),
    "evaluate: decompression bomb listed": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:21:", "raw/bomb.png", "decompression bomb"),
        bomb_in_tiny),
    "evaluate: 32-bit image out of range": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:21:", "raw/deep.tiff", "mode I image with values 70000"),
        deep_image_in_tiny),
    "evaluate: classes differ from the model": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("classes.txt", "position 0", "'zero'"),
        lambda ws: ws.tiny.joinpath("classes.txt").write_text("zero\n" + "".join(f"{d}\n" for d in range(1, 10)))),
    "evaluate: --name with a slash": Case("evaluate", lambda ws: ws.evaluate_tiny("--name", "a/b"), ("--name 'a/b'",)),
    "evaluate: --name over a folder it did not write": Case(
        "evaluate", lambda ws: ws.evaluate_tiny("--name", "mine", "--overwrite"),
        ("--name", "eval/mine", "no evaluation.json"), lambda ws: foreign_folder(ws.output / "eval" / "mine")),
    "evaluate: --batch-size 0": Case("evaluate", lambda ws: ws.evaluate_tiny("--batch-size", "0"), ("--batch-size",)),
    "evaluate: --threads -1": Case("evaluate", lambda ws: ws.evaluate_tiny("--threads", "-1"), ("--threads",)),
    "evaluate: --workers not a number": Case("evaluate", lambda ws: ws.evaluate_tiny("--workers", "many"),
                                             ("argument --workers", "'many'")),
    "evaluate: --on-unreadable unknown": Case("evaluate", lambda ws: ws.evaluate_tiny("--on-unreadable", "ignore"),
                                              ("argument --on-unreadable", "'ignore'")),
    "evaluate: --precision-targets 1.5": Case("evaluate", lambda ws: ws.evaluate_tiny("--precision-targets", "1.5"),
                                              ("targets must be in (0, 1]", "1.5")),
    "evaluate: --bootstrap -1": Case("evaluate", lambda ws: ws.evaluate_tiny("--bootstrap", "-1"), ("--bootstrap",)),
    # evaluate score: a damaged predictions.csv or evaluation.json
    "score: absolute path": Case("evaluate", score, ("good/predictions.csv:2:", "'/etc/passwd'", "not relative"),
                                 damage(set_row(1, path="/etc/passwd"))),
    "score: path leaving the data set": Case("evaluate", score, ("predictions.csv:4:", "'raw/../../x.png'"),
                                             damage(set_row(3, path="raw/../../x.png"))),
    "score: duplicated row": Case("evaluate", score, ("predictions.csv:3:", "listed twice (first on row 2)"),
                                  damage(swap_first_rows)),
    "score: duplicated score column": Case("evaluate", score, ("predictions.csv:1:", "'score:0' repeats column 4"),
                                           damage(two_scores)),
    "score: extra column": Case("evaluate", score, ("predictions.csv:1:", "column 14 'note'"), damage(extra_column)),
    "score: probabilities -5 and 7.5": Case("evaluate", score, ("predictions.csv:2:", "score:0 is -5", "[0, 1]"),
                                            damage(probabilities_out_of_range)),
    "score: logits instead of probabilities": Case("evaluate", score, ("predictions.csv:6:", "sum to 1.2", "not logits"),
                                                   damage(logits)),
    "score: Arabic-Indic true label": Case("evaluate", score, ("predictions.csv:2:", "true_label '\u0661'"),
                                           damage(set_row(1, true_label="\u0661"))),
    "score: fewer classes than evaluation.json": Case("evaluate", score, ("predictions.csv:1:", "name 9 classes",
                                                                          "evaluation.json", "names 10"),
                                                      damage(drop_last_class)),
    "score: a class renamed": Case("evaluate", score, ("predictions.csv:1:", "'zero'", "evaluation.json"),
                                   damage(rename_class)),
    "score: evaluation.json with a relative data set folder": Case(
        "evaluate", score, ("good/evaluation.json", "dataset_root 'data/digits' is not an absolute path"),
        lambda ws: edit_record(ws.good, lambda record: record.update(dataset_root="data/digits"))),
    "score: evaluation.json with an unknown field": Case(
        "evaluate", score, ("good/evaluation.json", "unknown field 'owner'"),
        lambda ws: edit_record(ws.good, lambda record: record.update(owner="me"))),
    "score: predictions.csv not UTF-8": Case("evaluate", score, ("good/predictions.csv", "not UTF-8"), not_utf8),
    "score: --out a file": Case("evaluate", lambda ws: score(ws, "good", "--out", str(ws.tmp / "a.txt"), "--overwrite"),
                                ("--out", "a.txt", "a file"), lambda ws: (ws.tmp / "a.txt").write_text("keep")),
    "score: --out a folder it did not write": Case(
        "evaluate", lambda ws: score(ws, "good", "--out", str(ws.tiny), "--overwrite"),
        ("--out", "tiny", "no evaluation.json")),
    "score: --bootstrap -1": Case("evaluate", lambda ws: score(ws, "good", "--bootstrap", "-1"), ("--bootstrap",)),
    # evaluate compare
    "compare: --name with a slash": Case("evaluate", lambda ws: ["compare", "good", "twin", "--name", "x/y"],
                                         ("--name 'x/y'",)),
    "compare: B damaged": Case("evaluate", lambda ws: ["compare", "good", "twin"],
                               ("twin/predictions.csv:3:", "listed twice"), damage(swap_first_rows, "twin")),
    "compare: different samples": Case("evaluate", lambda ws: ["compare", "good", "twin"],
                                       ("not of the same samples",), damage(shorter_twin, "twin")),
    "compare: --name over a folder it did not write": Case(
        "evaluate", lambda ws: ["compare", "good", "twin", "--name", "mine", "--overwrite"],
        ("--name", "eval/mine", "no compare.json"), lambda ws: foreign_folder(ws.output / "eval" / "mine")),
    "compare: A not an evaluation": Case("evaluate", lambda ws: ["compare", str(ws.tiny), "twin"],
                                         ("tiny", "not an evaluation folder")),
    # inspect-data
    "inspect: --per-class 0": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--per-class", "0"],
                                   ("--per-class",)),
    "inspect: --imbalance nan": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--imbalance", "nan"],
                                     ("--imbalance", "nan")),
    "inspect: --out a file": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--out", str(ws.tmp / "a.txt")],
                                  ("--out", "a.txt", "a file"), lambda ws: (ws.tmp / "a.txt").write_text("keep")),
    "inspect: --out the data set itself": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--out",
                                                                           str(ws.tiny)],
                                               ("--out", "tiny", "no report.json")),
    "inspect: data set missing": Case("inspect-data", lambda ws: ["--dataset", str(ws.tmp / "none")],
                                      ("none", "data set folder not found")),
    "inspect: --params with a YAML tag": Case(
        "inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--write-network", "x", "--arch", "small_cnn",
                                    "--params", "dropout=!!python/object/apply:os.system [ls]"],
        ("--params", "dropout=", "not valid YAML")),
    "inspect: --size 0": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--size", "0"],
                              ("argument --size", "'0'")),
    # prepare-data
    "prepare: --seed -1": Case("prepare-data", lambda ws: ["--out", str(ws.tmp / "d"), "--seed", "-1"],
                               ("--seed", "-1")),
    "prepare: --seed 2**32": Case("prepare-data", lambda ws: ["--out", str(ws.tmp / "d"), "--seed", str(2**32)],
                                  ("--seed", "4294967296")),
    "prepare: --seed not an integer": Case("prepare-data", lambda ws: ["--seed", "1.5"],
                                           ("argument --seed", "'1.5'")),
    "prepare: --out a file": Case("prepare-data", lambda ws: ["--out", str(ws.tmp / "a.txt"), "--force"],
                                  ("a.txt", "a file is there"), lambda ws: (ws.tmp / "a.txt").write_text("keep")),
    "prepare: --out below a file": Case("prepare-data", lambda ws: ["--out", str(ws.tmp / "a.txt" / "digits")],
                                        ("a.txt", "a file is in the way"),
                                        lambda ws: (ws.tmp / "a.txt").write_text("keep")),
    "prepare: --from-folder a file": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tiny_list), "--name",
                                                                      "x"],
                                          ("--from-folder", "test.txt", "a file, not a folder")),
    "prepare: --from-folder empty": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tmp / "e"), "--name", "x"],
                                         ("/e:", "found 0 class folder(s)"), lambda ws: (ws.tmp / "e").mkdir()),
    "prepare: --val 1.5": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tiny / "raw"), "--name", "x",
                                                           "--val", "1.5"], ("--val and --test", "val 1.5")),
    "prepare: --test nan": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tiny / "raw"), "--name", "x",
                                                            "--test", "nan"], ("--val and --test", "test nan")),
    "prepare: --dev-per-class 0": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tiny / "raw"), "--name",
                                                                   "x", "--dev-per-class", "0"],
                                       ("--dev-per-class", "got 0")),
    "prepare: --val without --from-folder": Case("prepare-data", lambda ws: ["--val", "0.2"],
                                                 ("--val: only with a source to import: --from-csv or --from-folder",)),
    "prepare: --name with a slash": Case("prepare-data", lambda ws: ["--from-folder", str(ws.tiny / "raw"), "--name",
                                                                     "../x"], ("--name '../x'",)),
    # hostile inputs, third round: names, bounds, received files that claim too much
    "evaluate: a class name with U+2028": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("classes.txt:3:", "'two\\u2028lines'", "a line break (U+2028)"),
        lambda ws: ws.tiny.joinpath("classes.txt").write_text(
            "".join(f"{d}\n" if d != 2 else "two\u2028lines\n" for d in range(10)), encoding="utf-8")),
    "evaluate: a list line with \\x1c": Case("evaluate", lambda ws: ws.evaluate_tiny(),
                                              ("test.txt:21:", "a line break (U+001C)"),
                                              lambda ws: add_list_line(ws, "raw/0/a\x1cb.png 0\n")),
    "evaluate: a list path with a control character": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:21:", "holds a control character"),
        lambda ws: add_list_line(ws, "raw/0/a\x07b.png 0\n")),
    "evaluate: a FIFO listed as an image": Case(
        "evaluate", lambda ws: ws.evaluate_tiny(), ("test.txt:21:", "raw/x.png", "not a regular file"),
        lambda ws: (os.mkfifo(ws.tiny / "raw" / "x.png"), add_list_line(ws, "raw/x.png 0\n"))),
    "evaluate: --bootstrap 1000000000": Case("evaluate", lambda ws: ws.evaluate_tiny("--bootstrap", "1000000000"),
                                             ("--bootstrap 1000000000", "at most 10000")),
    "evaluate: --name of 300 characters": Case("evaluate", lambda ws: ws.evaluate_tiny("--name", "n" * 300),
                                               ("--name 'nnnn", "300 bytes long")),
    "evaluate: a card naming 9 classes for 10 outputs": Case(
        "evaluate", evaluate_altered, ("altered.onnx", "class_names names 9 classes", "num_classes 10"),
        lambda ws: altered_model(ws, nine_class_names)),
    "evaluate: a card with a 20000 x 20000 input": Case(
        "evaluate", evaluate_altered, ("altered.onnx: input.contract", "400,000,000 pixels"),
        lambda ws: altered_model(ws, huge_input)),
    "evaluate: a graph that returns one row for a batch": Case(
        "evaluate", evaluate_altered,
        ("altered.onnx", "returned float32 (1, 10) for a batch of 20 images", "promises float32 (20, 10)"),
        lambda ws: altered_model(ws, graph_change=one_row_for_any_batch)),
    "evaluate: a graph that fails at run time": Case(
        "evaluate", evaluate_altered, ("altered.onnx", "onnxruntime failed running the model on a batch of 20 images"),
        lambda ws: altered_model(ws, graph_change=reshape_that_fails)),
    "score: 20,000 classes": Case("evaluate", score, ("predictions.csv:1:", "20000 score columns", "at most 1000"),
                                  damage(many_classes)),
    "score: a field of 200,000 characters": Case("evaluate", score, ("predictions.csv:2:", "longer than 131,072"),
                                                 damage(long_field)),
    "score: evaluation.json nested 100,000 deep": Case(
        "evaluate", score, ("good/evaluation.json", "nested more than 64 deep"),
        lambda ws: deeply_nested(ws.good / "evaluation.json")),
    "score: --bootstrap 1000000000": Case("evaluate", lambda ws: score(ws, "good", "--bootstrap", "1000000000"),
                                          ("--bootstrap 1000000000", "at most 10000")),
    "compare: --bootstrap 1000000000": Case("evaluate", lambda ws: ["compare", "good", "twin", "--bootstrap",
                                                                    "1000000000"], ("--bootstrap 1000000000",)),
    "inspect: --params YAML alias bomb": Case(
        "inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--write-network", "x", "--arch", "small_cnn",
                                    "--params", ALIAS_BOMB], ("--params", "more than 10,000 values")),
    "inspect: --write-network ../../x": Case(
        "inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--write-network", "../../x", "--arch", "small_cnn"],
        ("--write-network '../../x'", "a plain name")),
    "inspect: --size 20000": Case("inspect-data", lambda ws: ["--dataset", str(ws.tiny), "--size", "20000"],
                                  ("argument --size", "400,000,000 pixels")),
    "train: a negative step factor": Case("train", lambda ws: ["--print-config", "schedule.gamma=-0.5"],
                                          ("schedule.gamma", "must be positive, got -0.5")),
    "train: Adam betas outside [0, 1)": Case("train", lambda ws: ["--print-config", "optim.betas=[0.9,1.5]"],
                                             ("optim.betas", "each in [0, 1), got [0.9, 1.5]")),
    "train: a negative momentum": Case("train", lambda ws: ["--print-config", "optim.momentum=-0.1"],
                                       ("optim.momentum", "must be in [0, 1), got -0.1")),
    "train: a seed beyond 2^32": Case("train", lambda ws: ["--print-config", f"seed={2**32}"],
                                      ("seed: must be within 0..4294967295", "got 4294967296")),
    # train: YAML tags and broken YAML in command-line overrides
    "train: python object tag": Case("train", lambda ws: ["--print-config", "optim.lr=!!python/object:os.system x"],
                                     ("command line: optim.lr", "'!!python/object:os.system'")),
    "train: binary tag": Case("train", lambda ws: ["epochs=!!binary abc", "--print-config"],
                              ("command line: epochs", "'!!binary'")),
    "train: undefined alias": Case("train", lambda ws: ["--print-config", "epochs=*x"],
                                   ("command line: epochs", "not valid YAML")),
}


@pytest.mark.parametrize("name", CASES)
def test_a_bad_input_is_one_clear_error_and_changes_nothing(name, ws, capsys):
    case = CASES[name]
    if case.setup:
        case.setup(ws)
    before = snapshot(ws)
    status, err = run_command(case.command, case.argv(ws), capsys)
    assert status == 2, err
    assert "Traceback" not in err
    for fragment in case.says:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert snapshot(ws) == before


@pytest.mark.parametrize("name", ["prepare: --seed -1", "train: python object tag", "score: probabilities -5 and 7.5",
                                  "inspect: --out the data set itself"])
def test_the_real_command_line_prints_no_traceback(name, ws):
    case = CASES[name]
    if case.setup:
        case.setup(ws)
    before = snapshot(ws)
    result = run_subprocess(case.command, case.argv(ws))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and all(fragment in result.stderr for fragment in case.says)
    assert snapshot(ws) == before


def test_the_table_holds_the_bad_inputs_docs_robustness_md_counts():
    doc = (PROJECT_ROOT / "docs" / "robustness.md").read_text()
    stated = re.search(r"test_evaluate_and_data\.py`.*?a table of (\d+) bad inputs", doc, re.S)
    assert stated and int(stated.group(1)) == len(CASES)


# -- images: decompression bombs and memory, symbolic links out of the data set --------------------------------------

@pytest.mark.slow
def test_inspect_data_reports_a_decompression_bomb_with_its_line(ws, capsys):
    write_blank_png(ws.tiny / "raw" / "huge.png", 14000, 14000)  # past Pillow's own error limit
    add_list_line(ws, "raw/huge.png 4\n")
    status, err = run_command("inspect-data", ["--dataset", str(ws.tiny)], capsys)
    report = json.loads((ws.output / "inspect" / "tiny" / "report.json").read_text())
    assert status == 0 and "Traceback" not in err
    assert len(report["unreadable"]) == 1 and report["unreadable"][0].endswith(
        "test.txt:21: raw/huge.png (Image size (196000000 pixels) exceeds limit of 178956970 pixels, could be "
        "decompression bomb DOS attack.)")


MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
           "print('peak', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(done.returncode)")
"""A small launcher that runs a command and prints its peak resident memory (kB). The command is its child, not
pytest's: a child's peak counts the memory of the process it was forked from, which for pytest can be gigabytes."""


def peak_memory_mb(command: str, argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command in a fresh interpreter; its result and its peak resident memory in MB."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *command_line(command, *argv)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    peak_kb = int(result.stderr.rsplit("peak ", 1)[1].split()[0])
    return result, peak_kb / 1024


@pytest.mark.slow
def test_small_files_of_huge_images_never_make_evaluate_use_gigabytes(ws):
    """13000 x 13000 PNGs of half a megabyte: evaluation skips them, scoring draws no thumbnail of them.

    Before they were refused as decompression bombs this took 3.6 GB (evaluate) and 2.8 GB (score).
    """
    for mode, path in ws.corpus.bombs.items():
        shutil.copy(path, ws.tiny / "raw" / f"bomb-{mode}.png")
        add_list_line(ws, f"raw/bomb-{mode}.png 3\n")
    result, peak = peak_memory_mb("evaluate", ws.evaluate_tiny("--name", "bombs", "--on-unreadable", "skip"))
    assert result.returncode == 0, result.stderr
    assert "skipped an unreadable image" in result.stderr and "decompression bomb: 13000x13000" in result.stderr
    assert peak < 400, f"peak {peak:.0f} MB"
    folder = ws.output / "eval" / "bombs"

    def confident_mistakes(rows: list[list[str]]) -> None:
        for mode in ("L", "RGB"):
            rows.append([f"raw/bomb-{mode}.png", "3", "5"] + ["0"] * 10)
            rows[-1][3 + 5] = "1"

    edit_predictions(folder, confident_mistakes)
    result, peak = peak_memory_mb("evaluate", ["score", str(folder / "predictions.csv"), "--bootstrap", "0"])
    assert result.returncode == 0, result.stderr
    assert peak < 400, f"peak {peak:.0f} MB"
    cases = list(csv.DictReader((folder / "bad_cases.csv").open()))
    rows = {case["path"]: case for case in cases}
    assert "raw/bomb-L.png" in rows and "raw/bomb-RGB.png" in rows  # chosen as cases, drawn as "not available"
    assert len(list((folder / "thumbs").glob("*.png"))) == 2 * 20  # the 20 real images, file and network input


def hand_made_evaluation(ws: Workspace, root: Path, paths: list[str]) -> Path:
    """An evaluation folder as someone might send it: rows naming ``paths``, ``dataset_root`` naming ``root``."""
    folder = ws.output / "eval" / "hand-made"
    folder.mkdir()
    header = ["path", "true_label", "predicted_label", *(f"score:{d}" for d in range(10))]
    with (folder / "predictions.csv").open("w", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows([header, *([path, "0", "1", "0", "1"] + ["0"] * 8
                                                                     for path in paths)])
    (folder / "evaluation.json").write_text(json.dumps({"name": "hand-made", "class_names": [str(d) for d in range(10)],
                                                        "dataset_root": str(root)}))
    return folder


def secret_outside(ws: Workspace) -> Path:
    """A folder outside the data set holding an image ``secret.png``, linked from the data set as ``raw/link.png``."""
    outside = ws.tmp / "outside"
    outside.mkdir()
    Image.fromarray(np.full((8, 8), 123, dtype=np.uint8)).save(outside / "secret.png")
    (ws.tiny / "raw" / "link.png").symlink_to(outside / "secret.png")
    return outside


TRUST_CASES = {
    # name: (prepare.json's source, --image-root folders, forged dataset_root, thumbnails drawn, the warning)
    "named data set, link out of it": (None, ["tiny"], None, ["1.png"], "not inside the data set folder"),
    "forged prepare.json": ("outside", ["tiny"], None, ["1.png"], "prepare.json names"),
    "prepare.json's source named too": ("outside", ["tiny", "outside"], None, ["0.png", "1.png"], None),
    "forged dataset_root /": (None, [], "/", [], "names the data set folder /,"),
    "dataset_root not named": (None, [], "tiny", [], "which is not below the data folder"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", TRUST_CASES)
def test_thumbnails_are_read_only_from_trusted_folders(ws, capsys, caplog, case):
    """Trust roots: a folder a received file names (evaluation.json's dataset_root, prepare.json's link source) is
    followed only when the user named it (--image-root) or it lies below the data folder."""
    source, named, forged_root, drawn, warning = TRUST_CASES[case]
    outside = secret_outside(ws)
    folders = {"tiny": ws.tiny, "outside": outside, "/": Path("/"), None: ws.tiny}
    if source:
        (ws.tiny / "prepare.json").write_text(json.dumps({"link": "symlink", "source": str(folders[source])}))
    first = "raw/0/" + sorted((ws.tiny / "raw" / "0").iterdir())[0].name
    paths = ["raw/link.png", first] if forged_root != "/" else [str(outside / "secret.png")[1:], "etc/hostname"]
    folder = hand_made_evaluation(ws, folders[forged_root], paths)
    options = [option for name in named for option in ("--image-root", str(folders[name]))]
    status, err = run_command("evaluate", ["score", str(folder / "predictions.csv"), "--bootstrap", "0", *options],
                              capsys)
    assert status == 0 and "Traceback" not in err
    thumbs = folder / "thumbs"
    originals = sorted(p.name for p in thumbs.iterdir() if not p.name.endswith("-input.png")) if thumbs.is_dir() else []
    assert originals == drawn
    assert warning is None or warning in caplog.text, caplog.text


@pytest.mark.slow
def test_a_data_set_below_the_data_folder_is_trusted_without_naming_it(ws, capsys):
    moved = ws.data / "tiny"
    shutil.copytree(ws.tiny, moved)
    first = "raw/0/" + sorted((moved / "raw" / "0").iterdir())[0].name
    folder = hand_made_evaluation(ws, moved, [first])
    status, err = run_command("evaluate", ["score", str(folder / "predictions.csv"), "--bootstrap", "0"], capsys)
    assert status == 0 and "Traceback" not in err
    assert (folder / "thumbs" / "0.png").is_file()


# -- names that spreadsheets and matplotlib would evaluate ---------------------------------------------------------

HOSTILE_CLASSES = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "$x^{$", "'=quoted", "-0.5", "$a_$",
                   "a$b$c$$", "plain"]
"""Class names a spreadsheet would run as formulas, matplotlib would read as (broken) mathtext, or both."""


def hostile_names(card: dict) -> None:
    card["class_names"] = HOSTILE_CLASSES


@pytest.mark.slow
def test_formula_and_mathtext_names_are_drawn_and_written_as_text(ws, capsys):
    """Names starting with = + - @ are neutralised in every CSV (a leading '), read back exactly;
    names with $ are drawn literally (no mathtext), by evaluate, score, compare and inspect-data."""
    ws.tiny.joinpath("classes.txt").write_text("".join(f"{name}\n" for name in HOSTILE_CLASSES), encoding="utf-8")
    altered_model(ws, hostile_names)
    for name in ("a", "b"):
        status, err = run_command("evaluate", evaluate_altered(ws) + ["--name", name], capsys)
        assert status == 0 and "Traceback" not in err, err
    status, err = run_command("evaluate", ["compare", "a", "b", "--bootstrap", "0"], capsys)
    assert status == 0 and "Traceback" not in err, err
    status, err = run_command("inspect-data", ["--dataset", str(ws.tiny)], capsys)
    assert status == 0 and "Traceback" not in err, err
    written = [*ws.output.glob("eval/a/*.csv"), *ws.output.glob("eval/compare-*/*.csv"),
               *ws.output.glob("inspect/tiny/*.csv")]
    assert len(written) >= 8
    for path in written:
        for row in csv.reader(path.open(newline="", encoding="utf-8")):
            for cell in row:
                assert not cell[:1] in ("=", "+", "-", "@", "\t") or re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", cell), \
                    f"{path.name}: {cell!r}"
    cases = read_csv(ws.output / "eval" / "a" / "bad_cases.csv")
    assert {row[3] for row in cases[1:]} <= set(HOSTILE_CLASSES) and "'=quoted" in (
        ws.output / "eval" / "a" / "confusion_counts_rows-true_cols-predicted.csv").read_text(encoding="utf-8").replace(
        "''=quoted", "'=quoted")
    assert read_csv(ws.output / "eval" / "a" / "predictions.csv")[0][3:] == [f"score:{n}" for n in HOSTILE_CLASSES]
    status, err = run_command("evaluate", score(ws, "a"), capsys)
    assert status == 0 and "Traceback" not in err, err


# -- folder imports: links followed once, non-files skipped, a bounded walk ------------------------------------------

def photo_classes(ws: Workspace) -> Path:
    """``<tmp>/photos/<class>/``: two classes of four digits each."""
    photos = ws.tmp / "photos"
    for digit in (0, 1):
        (photos / f"class{digit}").mkdir(parents=True)
        for image in sorted((ws.corpus.digits / "raw" / str(digit)).iterdir())[:4]:
            shutil.copy(image, photos / f"class{digit}" / image.name)
    return photos


def test_a_folder_import_follows_no_link_twice_and_opens_no_fifo(ws, capsys):
    photos = photo_classes(ws)
    nested = photos / "class0" / "nested"
    nested.mkdir()
    (nested / "up").symlink_to("..")  # two loops in one folder: the old walk grew exponentially
    (nested / "top").symlink_to("../..")
    (photos / "class0" / "other").symlink_to(photos / "class1")  # the other class's images, labelled class0
    (photos / "class1" / "again.png").symlink_to(next((photos / "class1").iterdir()))
    os.mkfifo(photos / "class1" / "x.png")  # opening it would block the import for ever
    started = time.monotonic()
    status, err = run_command("prepare-data", ["--from-folder", str(photos), "--name", "walked", "--val", "0.25",
                                               "--test", "0.25"], capsys)
    assert status == 0 and "Traceback" not in err, err
    assert time.monotonic() - started < 60
    root = ws.data / "walked"
    listed = [line.split()[0] for split in ("train", "val", "test") for line in
              (root / "lists" / f"{split}.txt").read_text().splitlines() if not line.startswith("#")]
    assert sorted(listed) == sorted(f"raw/class{d}/{p.name}" for d in (0, 1)
                                    for p in sorted((ws.corpus.digits / "raw" / str(d)).iterdir())[:4])
    reasons = {entry["path"]: entry["reason"] for entry in json.loads((root / "prepare.json").read_text())["left_out"]}
    assert reasons["class1/x.png"] == "not a regular file (a FIFO)"
    assert "the same file as one already taken" in reasons["class1/again.png"]
    assert all("already walked" in reasons[path] for path in ("class0/other", "class0/nested/up"))


def test_a_folder_walk_is_bounded_in_time(ws):
    from datatools.readers.folder import walk_class_folders

    photos = photo_classes(ws)
    with pytest.raises(UserError, match=r"photos: stopped after 0 s of walking the folders \(0 files so far\)"):
        walk_class_folders(photos, ["class0", "class1"], seconds=0)


def test_a_fifo_named_as_an_image_is_refused_at_once(ws):
    os.mkfifo(ws.tmp / "x.png")
    started = time.monotonic()
    with pytest.raises(UnreadableImageError, match=r"x\.png: cannot decode image \(not a regular file but a FIFO\)"):
        decode_image(ws.tmp / "x.png")
    assert time.monotonic() - started < 5


# -- bounds on what an option may ask for -----------------------------------------------------------------------------

@pytest.mark.slow
def test_threads_and_workers_are_capped_at_the_cores_with_a_note(ws, capsys, caplog):
    status, err = run_command("evaluate", ws.evaluate_tiny("--threads", "100000", "--workers", "100000",
                                                           "--name", "capped"), capsys)
    assert status == 0 and "Traceback" not in err, err
    assert f"--threads 100000: using {cores()}, the CPU cores" in caplog.text
    assert f"--workers 100000: using {4 * cores()}, 4 per core of the CPU cores" in caplog.text


def test_a_bootstrap_too_large_for_memory_is_refused_with_an_estimate():
    with pytest.raises(UserError, match=r"--bootstrap 1000: with 1000 classes and 5000 samples a batch of resamples "
                                        r"would hold about 11\.3 GB .* use --bootstrap 177 or fewer"):
        check_bootstrap(1000, 5000, 1000)
    check_bootstrap(1000, 5000, 100)  # 100 classes: about 0.2 GB, fine
    check_bootstrap(0, 10**6, 1000)  # no bootstrap, nothing to hold


# -- disk faults: a full disk, no permission, a read-only file system, a file size limit ----------------------------

def fail_writes(monkeypatch: pytest.MonkeyPatch, code: int, after: int) -> None:
    """Make every file write after the first ``after`` fail with ``code`` (as a real full disk would)."""
    writes: list[int] = []

    def fsync(descriptor: int) -> None:
        writes.append(descriptor)
        if len(writes) > after:
            raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fsync)


def hidden_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


@pytest.mark.parametrize(("code", "after"), [(errno.ENOSPC, 0), (errno.ENOSPC, 3), (errno.EDQUOT, 5)])
def test_a_full_disk_during_evaluate_is_one_line_and_leaves_nothing(ws, capsys, monkeypatch, code, after):
    before = snapshot(ws)
    fail_writes(monkeypatch, code, after)
    status, err = run_command("evaluate", ws.evaluate_tiny("--name", "full"), capsys)
    assert status == 2 and "Traceback" not in err
    assert err.startswith(f"error: {ws.output / 'eval' / 'full'}/") and err.endswith(f": {os.strerror(code)}\n")
    assert not (ws.output / "eval" / "full").exists() and hidden_entries(ws.output / "eval") == []
    assert snapshot(ws) == before


def test_no_permission_during_prepare_data_names_the_file(ws, capsys, monkeypatch):
    def denied(source, target, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(source))

    photos = ws.tmp / "photos"
    for digit in (0, 1):
        (photos / f"class{digit}").mkdir(parents=True)
        for image in sorted((ws.corpus.digits / "raw" / str(digit)).iterdir())[:10]:
            shutil.copy(image, photos / f"class{digit}" / image.name)
    monkeypatch.setattr(shutil, "copyfile", denied)
    status, err = run_command("prepare-data", ["--from-folder", str(photos), "--name", "copied"], capsys)
    assert status == 2 and "Traceback" not in err and "Permission denied" in err and "photos/class0/" in err
    assert not (ws.data / "copied").exists() and hidden_entries(ws.data) == []


@pytest.mark.slow
def test_a_read_only_disk_during_inspect_data_names_the_file(ws, capsys, monkeypatch):
    fail_writes(monkeypatch, errno.EROFS, 0)
    status, err = run_command("inspect-data", ["--dataset", str(ws.tiny)], capsys)
    assert status == 2 and "Traceback" not in err
    assert err.startswith(f"error: {ws.output / 'inspect' / 'tiny'}/") and err.endswith("Read-only file system\n")
    assert not (ws.output / "inspect" / "tiny").exists() and hidden_entries(ws.output / "inspect") == []


def limit_file_size() -> None:
    """In the child: files may not grow past 16 kB (writes fail with EFBIG instead of killing the process)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))


def test_a_file_size_limit_stops_a_real_evaluate_cleanly(ws):
    before = snapshot(ws)
    result = run_subprocess("evaluate", ["--model", str(ws.corpus.model), "--list",
                                         str(ws.corpus.digits / "lists" / "test.txt"), "--name", "limited",
                                         "--no-progress", "--bootstrap", "0"], preexec_fn=limit_file_size)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {ws.output / 'eval' / 'limited'}/") and last.endswith(": File too large")
    assert not (ws.output / "eval" / "limited").exists() and hidden_entries(ws.output / "eval") == []
    assert snapshot(ws) == before


# -- SIGKILL at a random moment: no complete-looking output, and the next run cleans up --------------------------------

KILL_DELAYS = [round(random.Random(seed).uniform(0.0, 0.3), 3) for seed in (12, 13)]
"""Seconds after the command starts staging its output at which it is killed (seeded, so a failure repeats)."""


def kill_while_staging(command: str, argv: list[str], folder: Path, delay: float) -> None:
    """Start the command, wait until its staging folder appears in ``folder``, then kill it ``delay`` s later.

    Raises:
        AssertionError: When the command ended before anything was staged (the kill would prove nothing).
    """
    process = subprocess.Popen(command_line(command, *argv), cwd=PROJECT_ROOT, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(".staging-" in name for name in hidden_entries(folder)):
        assert process.poll() is None and time.monotonic() < deadline, f"{command} ended before it staged anything"
        time.sleep(0.001)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_evaluate_killed_while_it_writes_its_output(ws, delay):
    argv = ["--model", str(ws.corpus.model), "--list", str(ws.corpus.digits / "lists" / "test.txt"), "--name",
            "killed", "--no-progress", "--bootstrap", "200"]
    kill_while_staging("evaluate", argv, ws.output / "eval", delay)
    complete = {p.name for p in ws.good.iterdir()}
    target = ws.output / "eval" / "killed"
    assert not target.exists() or {p.name for p in target.iterdir()} == complete  # published whole, or not at all
    assert all(".staging-" in name for name in hidden_entries(ws.output / "eval"))  # debris is recognisable
    again = run_subprocess("evaluate", [*argv, "--overwrite"])
    assert again.returncode == 0, again.stderr
    assert {p.name for p in target.iterdir()} == complete and hidden_entries(ws.output / "eval") == []


@pytest.mark.slow
@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_prepare_data_killed_while_it_writes_its_output(ws, delay):
    target = ws.tmp / "digits"
    kill_while_staging("prepare-data", ["--out", str(target)], ws.tmp, delay)
    complete = sorted(str(p.relative_to(ws.corpus.digits)) for p in ws.corpus.digits.rglob("*"))
    if target.exists():
        assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == complete
    assert all(".staging-" in name for name in hidden_entries(ws.tmp))
    again = run_subprocess("prepare-data", ["--out", str(target)])
    assert again.returncode == 0, again.stderr
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == complete
    assert hidden_entries(ws.tmp) == []

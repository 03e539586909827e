"""The rows files: written and read back exactly (hostile names included), torn rows recovered, damage named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from predict.rows import ROWS_FILES, RowsFileError, RowWriter, read_rows, read_unreadable, recover

CLASSES = ["cat", 'd,o"g', "<b>bird</b>\n", "abstain"]
HOSTILE = ["/p/a,b.png", '/p/q"uote.png', "/p/ünï cödé.png", "/p/<script>x</script>.png", "/p/z\nnew line.png"]
"""Sorted, the last is the one with a line break: a row torn inside its quoted path is recovered too."""


def write(folder: Path, fmt: str, paths: list[str] = HOSTILE, top_k: int = 3, decided: list[bool] | None = None
          ) -> np.ndarray:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), len(paths)).astype(np.float32)  # (N, K)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    values = np.take_along_axis(probabilities, order, axis=1)
    writer = RowWriter(folder, fmt, top_k, CLASSES)
    flags = np.array(decided if decided is not None else [i % 2 == 0 for i in range(len(paths))])
    writer.write(sorted(paths), order, values, order[:, 0], flags)
    writer.write_unreadable([("/p/broken,\n.jpg", "cannot identify image file")])
    return values


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_round_trip_exactly_whatever_the_names(tmp_path, fmt):
    values = write(tmp_path, fmt)
    rows = list(read_rows(tmp_path, fmt, 3, CLASSES))
    assert [row.path for row in rows] == sorted(HOSTILE)
    assert np.array_equal(np.array([row.probabilities for row in rows], dtype=np.float32), values)  # bitwise
    assert [row.decision for row in rows[1::2]] == ["abstain", "abstain"] and rows[1].label is None
    assert rows[0].decision == rows[0].classes[0] and rows[0].label == CLASSES.index(rows[0].decision)
    assert read_unreadable(tmp_path) == [("/p/broken,\n.jpg", "cannot identify image file")]


def test_the_csv_is_ordinary_csv(tmp_path):
    write(tmp_path, "csv")
    with open(tmp_path / "predictions.csv", newline="", encoding="utf-8") as stream:
        table = list(csv.DictReader(stream))
    assert table[0].keys() == {"path", "decision", "decision_label", "class_1", "probability_1", "class_2",
                               "probability_2", "class_3", "probability_3"}
    assert [row["path"] for row in table] == sorted(HOSTILE) and table[1]["decision_label"] == ""


def test_a_class_named_abstain_stays_unambiguous(tmp_path):
    probabilities = np.array([[0.1, 0.1, 0.1, 0.7]], dtype=np.float32)
    RowWriter(tmp_path, "jsonl", 1, CLASSES).write(["/p/x.png"], np.array([[3]]), np.array([[0.7]]), np.array([3]),
                                                   np.array([True]))
    line = json.loads((tmp_path / "predictions.jsonl").read_text())
    assert line["decision"] == "abstain" and line["decision_label"] == 3  # decided as the class named 'abstain'
    assert next(read_rows(tmp_path, "jsonl", 1, CLASSES)).label == 3 and probabilities.shape == (1, 4)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_torn_last_row_is_cut_off_at_any_byte(tmp_path, fmt):
    (tmp_path / "whole").mkdir()
    write(tmp_path / "whole", fmt)
    data = (tmp_path / "whole" / ROWS_FILES[fmt]).read_bytes()
    rows = list(read_rows(tmp_path / "whole", fmt, 3, CLASSES))
    (tmp_path / "prefix").mkdir()
    RowWriter(tmp_path / "prefix", fmt, 3, CLASSES).write_rows(rows[:-1])  # written exactly as write() writes them
    prefix = (tmp_path / "prefix" / ROWS_FILES[fmt]).read_bytes()
    assert data.startswith(prefix) and len(prefix) < len(data)
    folder = tmp_path / "cut"
    folder.mkdir()
    for cut in range(len(prefix), len(data)):
        (folder / ROWS_FILES[fmt]).write_bytes(data[:cut])
        done = recover(folder, fmt, 3, CLASSES)
        assert done == {row.path for row in rows[:-1]}, cut
        assert (folder / ROWS_FILES[fmt]).read_bytes() == prefix
    with pytest.raises(RowsFileError):
        list(read_rows(tmp_path / "whole", fmt, 2, CLASSES))  # read as another top-k: refused


def test_a_torn_unreadable_row_is_cut_off_too(tmp_path):
    write(tmp_path, "csv")
    path = tmp_path / "unreadable.csv"
    path.write_bytes(path.read_bytes()[:-5])
    assert recover(tmp_path, "csv", 3, CLASSES) == {row.path for row in read_rows(tmp_path, "csv", 3, CLASSES)}
    assert read_unreadable(tmp_path) == []


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t.replace("/p/a,b.png", "p/a,b.png"), "path 'p/a,b.png' is not absolute"),
    (lambda t: t.replace("0.", "7.", 1), "expected 3 classes of the model with probabilities in [0, 1]"),
    (lambda t: t.replace("cat,", "cow,", 1), "expected 3 classes of the model"),
])
def test_damaged_rows_are_named_with_their_row(tmp_path, edit, problem):
    write(tmp_path, "csv", paths=["/p/a,b.png", "/p/b.png", "/p/c.png"], decided=[False] * 3)
    path = tmp_path / "predictions.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(RowsFileError) as excinfo:
        list(read_rows(tmp_path, "csv", 3, CLASSES))
    assert any(problem in text and text.startswith(f"{path}:") for text in excinfo.value.problems), \
        excinfo.value.problems


def test_rows_out_of_order_are_refused(tmp_path):
    write(tmp_path, "csv", paths=["/p/a.png", "/p/b.png"], decided=[False, False])
    path = tmp_path / "predictions.csv"
    with open(path, newline="", encoding="utf-8") as stream:
        table = list(csv.reader(stream))
    with open(path, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream, lineterminator="\n").writerows([table[0], table[2], table[1]])
    with pytest.raises(RowsFileError, match=r"predictions\.csv:3: path '/p/a\.png' is not after the row before it"):
        list(read_rows(tmp_path, "csv", 3, CLASSES))


@pytest.mark.parametrize("classes, paths", [
    (["cat", "dog", "bird", "fish"], [f"/data/{i:04d}.png" for i in range(300)]),  # plain: the joined fast path
    (["cat", "dog", "bird", "fish"], ["/p/a,b.png", "/p/plain.png"]),  # a path needs quoting: the general writer
    (["=cat", "dog", "bird", "fish"], ["/p/plain.png"]),  # a class needs neutralising: the general writer
])
def test_every_batch_is_written_as_the_general_csv_writer_writes_it(tmp_path, classes, paths):
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(len(classes)), len(paths)).astype(np.float32)  # (N, K)
    probabilities[0] = [1, 0, 0, 0]  # extreme values format as the writer formats them too
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    values = np.take_along_axis(probabilities, order, axis=1)
    decided = rng.random(len(paths)) < 0.7
    writer = RowWriter(tmp_path, "csv", 3, classes)
    writer.write(paths, order, values, order[:, 0], decided)
    general = writer._text((path, classes[best] if ok else "abstain", best if ok else None,
                            [classes[c] for c in row], list(row_values))
                           for path, row, row_values, best, ok in zip(paths, order.tolist(), values.tolist(),
                                                                      order[:, 0].tolist(), decided.tolist()))
    written = (tmp_path / "predictions.csv").read_text(encoding="utf-8")
    assert written.split("\n", 1)[1] == general
    read = np.array([row.probabilities for row in read_rows(tmp_path, "csv", 3, classes)], dtype=np.float32)
    assert np.array_equal(read, values)  # bitwise, through the text

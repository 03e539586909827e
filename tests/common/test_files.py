"""The readers and writers every stage shares: CSV cells a spreadsheet would evaluate, JSON and YAML that claim
too much, and the bounds of common.limits."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from common.errors import UserError
from common.files import csv_text, neutral_cell, parse_json, parse_yaml, read_csv, restored_cell, write_csv
from common.limits import cores, thread_count

CELLS = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x", "''@x", "'s-Hertogenbosch", "-0.5", "+1e-05",
         "-inf", "-", "'", "", "plain", "a=b", "1.5"]


@pytest.mark.parametrize("cell", CELLS)
def test_every_text_cell_reads_back_as_it_was_written(tmp_path, cell):
    path = tmp_path / "cells.csv"
    write_csv(path, ["header", cell], [[cell, 3, -0.5]])
    header, row = read_csv(path)
    assert header == ["header", cell] and row == [cell, "3", "-0.5"]
    raw = next(csv.reader(io.StringIO(path.read_text(), newline="")))[1]
    assert raw[:1] not in ("=", "+", "-", "@", "\t", "\r") or raw in ("-0.5", "+1e-05"), raw  # never a formula


def test_numbers_stay_numbers_and_formulas_get_a_quote():
    assert [neutral_cell(c) for c in ("-0.5", "+1e-05", "=1+1", "-2+3", "@x")] == ["-0.5", "+1e-05", "'=1+1", "'-2+3",
                                                                                  "'@x"]
    assert neutral_cell(-0.5) == -0.5 and neutral_cell(7) == 7  # numbers written as numbers are left alone
    assert restored_cell("'s-H") == "'s-H" and restored_cell("'=x") == "=x"
    assert csv_text(None, [["=x", -1]]) == "'=x,-1\n"


def test_rows_over_several_chunks_with_line_breaks_in_cells_read_back_exactly(tmp_path):
    rows = [[f"r{i}", "a\rb" if i % 1000 == 7 else "x", "c\r\nd" if i % 3001 == 5 else i, 0.5] for i in range(10_000)]
    path = tmp_path / "many.csv"
    write_csv(path, ["name", "text", "other", "value"], rows)
    header, *back = read_csv(path)
    assert header == ["name", "text", "other", "value"] and len(back) == 10_000
    assert back == [[str(cell) for cell in row] for row in rows]


def test_a_field_longer_than_the_csv_limit_names_the_file_and_line(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n" + "x" * 200_000 + ",3\n")
    with pytest.raises(UserError, match=r"long\.csv:3: a field longer than 131,072 characters"):
        read_csv(path)


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 65 + "]" * 65, r"nested more than 64 deep"),
    ("[" * 100_000 + "]" * 100_000, r"nested more than 64 deep"),
    ("{", r"Expecting property name"),
])
def test_json_that_nests_too_deep_is_refused_naming_its_source(text, message):
    with pytest.raises(UserError, match=rf"^card\.json: not valid JSON \(.*{message}"):
        parse_json(text, "card.json")
    assert parse_json("[" * 64 + "]" * 64, "ok") is not None


@pytest.mark.parametrize(("text", "message"), [
    ("[" + ", ".join(f"&a{i} [" + ",".join([f"*a{i - 1}" if i else "1"] * 9) + "]" for i in range(6)) + "]",
     r"more than 10,000 values once its aliases are expanded"),
    ("a: &a [*a]", r"nested more than 64 deep"),
    ("[" * 70 + "]" * 70, r"nested more than 64 deep"),
    ("x: !!python/object/apply:os.system [ls]", r"could not determine a constructor"),
])
def test_yaml_that_claims_too_much_is_refused_before_it_is_built(text, message):
    with pytest.raises(UserError, match=rf"^params: not valid YAML \(.*{message}"):
        parse_yaml(text, "params")
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "ok") == {"a": [1, 2], "b": [1, 2]}


def test_threads_are_capped_at_the_cores_saying_so(caplog):
    assert thread_count(0, "--threads") == cores() and thread_count(1, "--threads") == 1
    assert thread_count(100_000, "--threads") == cores()
    assert f"--threads 100000: using {cores()}" in caplog.text


def test_predict_threshold_naming_a_pipe_nobody_writes_is_refused_not_waited_for(tmp_path, monkeypatch):
    from common import files

    monkeypatch.setattr(files, "PIPE_WAIT_SECONDS", 0.5)
    pipe = tmp_path / "thresholds.yaml"
    os.mkfifo(pipe)
    with pytest.raises(UserError, match=r"thresholds.yaml: a pipe that nobody wrote to in 0 s"):
        files.read_text(pipe)
    with pytest.raises(UserError, match=r"zero: a device or socket, not a file"):
        files.read_text(Path("/dev/zero"))  # would never end
    with pytest.raises(UserError, match=r"a folder; give a file"):
        files.read_text(tmp_path)
    reader, writer = os.pipe()  # what `--threshold <(...)` gives: a pipe someone writes
    os.write(writer, b"cat: 0.5\n")
    os.close(writer)
    assert files.read_text(Path(f"/proc/self/fd/{reader}")) == "cat: 0.5\n"

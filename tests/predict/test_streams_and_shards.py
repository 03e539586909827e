"""``--stream`` killed and ``--resume``d, ``--shard i/n`` and ``predict merge``: the same rows as one plain run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from common.locks import exclusive
from common.paths import PROJECT_ROOT
from predict.output import read_record
from tests.commands import command_line
from tests.predict.runs import output_root, run_predict, snapshot


def inputs(digits_root: Path, mixed: Path) -> list[str]:
    """About 2,000 images: the digits and the mixed folder (with an unreadable JPEG)."""
    return [str(digits_root / "raw"), str(mixed / "raw")]


def killed_stream(argv: list[str], rows: Path, lines: int) -> None:
    """Start ``predict --stream`` (or ``--resume``) in a subprocess and SIGKILL it once ``rows`` has ``lines`` lines."""
    process = subprocess.Popen(command_line("predict", *argv), cwd=PROJECT_ROOT, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if rows.exists() and rows.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.005)
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()


@pytest.mark.slow
def test_a_stream_killed_twice_resumes_to_the_rows_of_an_uninterrupted_run(models, digits_root, mixed, capsys):
    common = [*inputs(digits_root, mixed), "--model", str(models.model), "--batch-size", "16", "--workers", "1",
              "--rank", "uncertainty", "--no-progress"]
    status, _, err = run_predict([*common, "--name", "whole"], capsys)
    assert status == 0, err
    whole, stream = output_root() / "whole", output_root() / "stream"
    killed_stream([*common, "--name", "stream", "--stream"], stream / "predictions.csv", 500)
    assert read_record(stream).status == "running"
    killed_stream([*common, "--name", "stream", "--resume"], stream / "predictions.csv", 1300)
    status, out, err = run_predict(["--resume", "--name", "stream", "--model", str(models.model), "--batch-size",
                                    "16", "--workers", "1", "--rank", "uncertainty", "--no-progress"], capsys)
    assert status == 0, err  # the inputs were taken from the record
    for name in ("predictions.csv", "unreadable.csv", "to_label.txt"):
        assert (stream / name).read_bytes() == (whole / name).read_bytes(), name
    record = read_record(stream)
    assert record.status == "complete" and len(record.resumed) == 2
    assert 500 <= record.resumed[0]["done"] < record.resumed[1]["done"] < record.images
    assert f"resumed: {record.resumed[1]['done']:,} of {record.images:,} image(s) were already done" in out
    assert "Resumed at " in (stream / "report.html").read_text()
    status, out, _ = run_predict(["--resume", "--name", "stream", "--model", str(models.model)], capsys)
    assert status == 0 and (stream / "predictions.csv").read_bytes() == (whole / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_a_resume_with_other_settings_or_while_another_writes_is_refused(models, digits_root, mixed, capsys):
    common = [str(mixed / "raw"), "--model", str(models.model), "--name", "s", "--no-progress"]
    assert run_predict([*common, "--stream"], capsys)[0] == 0
    before = snapshot(output_root())
    status, _, err = run_predict([*common, "--resume", "--top-k", "3"], capsys)
    assert status == 2 and "the run being resumed was made with other settings (top_k: 5 vs 3)" in err
    status, _, err = run_predict([*common, "--stream"], capsys)
    assert status == 2 and "already exists; continue it with --resume" in err
    status, _, err = run_predict([str(digits_root / "raw"), *common[1:], "--resume"], capsys)
    assert status == 2 and "inputs_sha256" in err and "inputs_count: 161 vs" in err
    assert snapshot(output_root()) == before
    with exclusive(output_root() / "s" / ".lock", "s"):  # another process writing it
        held = snapshot(output_root())
        status, _, err = run_predict([*common, "--resume"], capsys)
        assert status == 2 and f"is in use by pid {os.getpid()}" in err
        assert snapshot(output_root()) == held


def test_predict_resume_of_a_stream_whose_rows_name_a_foreign_image_is_refused(models, mixed, tmp_path, capsys):
    common = [str(mixed / "raw"), "--model", str(models.model), "--name", "s", "--no-progress"]
    assert run_predict([*common, "--stream"], capsys)[0] == 0
    folder = output_root() / "s"
    data = json.loads((folder / "prediction.json").read_text())
    (folder / "prediction.json").write_text(json.dumps({**data, "status": "running"}))  # as if killed
    private = tmp_path / "zz-private.png"  # sorts after the inputs' rows
    shutil.copy(sorted((mixed / "raw" / "3").glob("*.png"))[0], private)
    rows = (folder / "predictions.csv").read_text().splitlines(keepends=True)
    (folder / "predictions.csv").write_text("".join([*rows[:-1], f"{private},{rows[-1].split(',', 1)[1]}"]))
    before = {path: data for path, data in snapshot(output_root()).items() if not path.endswith(".lock")}
    status, _, err = run_predict([*common, "--resume"], capsys)
    assert status == 2 and "its rows name 1 image(s) that are not among this prediction's inputs" in err, err
    assert {path: data for path, data in snapshot(output_root()).items() if not path.endswith(".lock")} == before


@pytest.mark.slow
def test_four_shards_merged_equal_one_unsharded_run(models, digits_root, mixed, capsys):
    common = [*inputs(digits_root, mixed), "--model", str(models.model), "--rank", "uncertainty", "--rank-limit", "0",
              "--no-progress"]
    assert run_predict([*common, "--name", "once"], capsys)[0] == 0
    for index in (2, 0, 3, 1):
        status, _, err = run_predict([*common, "--name", "week", "--shard", f"{index}/4"], capsys)
        assert status == 0, err
    shards = sorted(str(p) for p in output_root().glob("week-shard-*-of-4"))
    assert len(shards) == 4 and read_record(Path(shards[1])).shard == {"index": 1, "count": 4}
    status, out, err = run_predict(["merge", *shards], capsys)
    assert status == 0, err
    once, merged = output_root() / "once", output_root() / "week"
    for name in ("predictions.csv", "unreadable.csv", "to_label.txt"):
        assert (merged / name).read_bytes() == (once / name).read_bytes(), name
    record, plain = read_record(merged), read_record(once)
    assert record.summary == plain.summary and record.merged_from == [str(Path(s)) for s in shards]
    assert record.shard is None and record.images == plain.images
    assert "Merged from 4 shards" in (merged / "report.html").read_text() and "image(s) predicted" in out


@pytest.mark.slow
def test_merge_refuses_missing_duplicated_unfinished_and_foreign_shards(models, mixed, tmp_path, capsys):
    common = [str(mixed / "raw"), "--no-progress"]
    for index in range(3):
        assert run_predict([*common, "--model", str(models.model), "--name", "a", "--shard", f"{index}/3"],
                           capsys)[0] == 0
    assert run_predict([*common, "--model", str(models.other), "--name", "b", "--shard", "1/3"], capsys)[0] == 0
    assert run_predict([str(mixed / "raw" / "3"), "--model", str(models.model), "--name", "c", "--shard", "1/3",
                        "--no-progress"], capsys)[0] == 0
    shutil.copytree(output_root() / "a-shard-1-of-3", output_root() / "copy")
    forged = output_root() / "forged"  # shard 1, one row edited to name a private image never among the inputs
    shutil.copytree(output_root() / "a-shard-1-of-3", forged)
    private = tmp_path / "private.png"
    shutil.copy(sorted((mixed / "raw" / "3").glob("*.png"))[0], private)
    rows = (forged / "predictions.csv").read_text().splitlines(keepends=True)
    rows[-1] = f"{private},{rows[-1].split(',', 1)[1]}"  # sorts last: tmp_path is after mixed
    (forged / "predictions.csv").write_text("".join(rows))
    unfinished = output_root() / "unfinished"
    shutil.copytree(output_root() / "a-shard-2-of-3", unfinished)
    data = json.loads((unfinished / "prediction.json").read_text())
    (unfinished / "prediction.json").write_text(json.dumps({**data, "status": "running"}))
    a = [f"a-shard-{i}-of-3" for i in range(3)]
    before = snapshot(output_root())
    for shards, message in [
        (a[:2], r"missing shard\(s\) \[2\] of 3 \(expected folders like a-shard-2-of-3\); predict them with "
                r"--shard 2/3"),
        ([*a, "copy"], r"copy and .*a-shard-1-of-3 are both shard 1 of 3"),
        ([a[0], "b-shard-1-of-3", a[2]], r"b-shard-1-of-3: a foreign shard: it differs from .*a-shard-0-of-3 in "
                                         r"model_sha256: "),
        ([a[0], "c-shard-1-of-3", a[2]], r"c-shard-1-of-3: a foreign shard: .*inputs_sha256"),
        ([a[0], a[1], "unfinished"], r"unfinished: the shard is not finished \(status running\)"),
        ([a[0], "forged", a[2]], r"the shards' rows name images other than their inputs .* a shard was changed"),
        ([str(mixed)], r"not a prediction output \(it has no prediction\.json\)"),
    ]:
        status, _, err = run_predict(["merge", *shards], capsys)
        assert status == 2 and re.search(message, err), err
        assert err.startswith("error: ") and "Traceback" not in err
    assert snapshot(output_root()) == before


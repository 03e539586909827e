"""List versions: every change of a list is a version, kept in lists/history/ and explained in CHANGES.jsonl;
a change is published whole (a killed writer leaves the previous version whole); the stages only look versions up."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import list_versions
from common.digits import prepare_digits
from common.errors import UserError
from common.files import file_sha256, read_text
from common.list_versions import (
    ChangesFileError,
    commit,
    history_file,
    list_reference,
    lists_lock,
    read_history,
    record_created,
    record_noticed,
    version_label,
    write_derived,
)
from common.paths import PROJECT_ROOT


@pytest.fixture
def digits(write_dataset) -> Path:
    """A small data set (12 images of 3 classes; lists train, val, test, dev) as the data tools write one:
    its history says ``created``, every list v1."""
    import numpy as np

    images = {f"raw/{c}/{i}.png": np.full((4, 4), 20 * i + 80 * c, dtype=np.uint8) for c in range(3) for i in range(4)}
    splits = {"train": [(c, i) for c in range(3) for i in (0, 1)], "val": [(c, 2) for c in range(3)],
              "test": [(c, 3) for c in range(3)], "dev": [(c, 0) for c in range(3)]}
    root = write_dataset(images=images, lists={split: f"# {split}\n" + "".join(f"raw/{c}/{i}.png {c}\n" for c, i in
                                                                              members) for split, members in
                                               splits.items()})
    record_created(root, "a test", "written by the test")
    return root


def lines(root: Path, split: str) -> list[str]:
    return read_text(root / "lists" / f"{split}.txt").splitlines()


def test_a_new_data_set_starts_with_version_1_of_every_list(digits):
    history = read_history(digits)
    (created,) = history.changes
    assert created.kind == "created" and created.change == 1 and created.counts == {"images": 12}
    assert {split: v.version for split, v in history.current().items()} == dict.fromkeys(
        ["dev", "test", "train", "val"], 1)
    for split, version in history.current().items():
        path = digits / "lists" / f"{split}.txt"
        assert version.sha256 == file_sha256(path) and history_file(digits / "lists", split, 1).read_bytes() == \
            path.read_bytes()
    assert list_reference(digits / "lists" / "train.txt").describe() == "train v1"


def test_a_hand_edit_is_noticed_by_its_hash_and_becomes_a_version_with_what_changed(digits):
    train = digits / "lists" / "train.txt"
    before = train.read_text()
    first, second, third = [line for line in before.splitlines() if not line.startswith("#")][:3]
    edited = before.replace(f"{first}\n", "").replace(second, second[:-1] + ("0" if second[-1] != "0" else "1"))
    train.write_text(edited + "raw/extra.png 3\n")
    (digits / "lists" / "extra.txt").write_text(f"{third}\n")
    assert list_reference(train).version is None  # the stages only look up; nothing recorded yet
    first_seen, edit = record_noticed(digits, "a test")
    assert first_seen.kind == "first_seen" and first_seen.lists["extra"]["version"] == 1
    assert edit.kind == "hand_edit" and edit.lists["train"] == {
        "version": 2, "previous": 1, "sha256": file_sha256(train), "samples": 6}
    changes = {image["change"]: image for image in edit.images}
    assert changes["remove"]["path"] == first.rsplit()[0] and changes["add"]["path"] == "raw/extra.png"
    assert changes["relabel"]["path"] == second.rsplit()[0] and changes["relabel"]["from"] == second.rsplit()[1]
    assert edit.counts == {"added": 1, "removed": 1, "relabelled": 1}
    assert history_file(digits / "lists", "train", 1).read_text() == before  # the previous version is kept
    assert history_file(digits / "lists", "train", 2).read_text() == train.read_text()
    assert list_reference(train).describe() == "train v2"
    assert record_noticed(digits, "again") == []  # nothing new: nothing recorded
    assert [c.kind for c in read_history(digits).changes] == ["created", "first_seen", "hand_edit"]


def test_commit_publishes_new_versions_and_refuses_lists_that_moved_since(digits):
    train = digits / "lists" / "train.txt"
    text = "".join(line + "\n" for line in lines(digits, "train")[:-5])
    change = commit(digits, {"train": text}, "apply", "cmd", "why", {"removed": 5}, [], {"train": file_sha256(train)})
    assert change.change == 2 and change.lists["train"]["version"] == 2 and train.read_text() == text
    assert read_history(digits).version_of("train", file_sha256(train)) == 2
    assert read_history(digits).version_of("train", change.lists["train"]["sha256"]) == 2
    stale = {"train": "0" * 64}
    with pytest.raises(UserError, match="train.txt changed since the change was prepared; nothing was written"):
        commit(digits, {"train": "x 1\n"}, "apply", "cmd", "why", {}, [], stale)
    assert train.read_text() == text and len(read_history(digits).changes) == 2


def test_a_second_writer_is_refused_while_the_lists_change(digits):
    with lists_lock(digits):
        code = ("import sys; from common.list_versions import record_noticed; from pathlib import Path\n"
                f"record_noticed(Path({str(digits)!r}), 'other')")
        result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "the lists of" in result.stderr and "in use by pid" in result.stderr


def test_derived_lists_are_written_once_and_never_versioned(digits):
    assert write_derived(digits, {"cv3-s0-v1-f1-train": "raw/0/0.png 0\n"}) == ["cv3-s0-v1-f1-train"]
    assert write_derived(digits, {"cv3-s0-v1-f1-train": "raw/0/0.png 0\n"}) == []
    with pytest.raises(UserError, match="derived lists never change"):
        write_derived(digits, {"cv3-s0-v1-f1-train": "raw/0/1.png 0\n"})
    assert record_noticed(digits, "test") == []
    reference = list_reference(digits / "lists" / "cv3-s0-v1-f1-train.txt")
    assert reference.version is None and reference.describe() == "cv3-s0-v1-f1-train (drawn from train v1)"


def test_a_damaged_history_is_reported_with_its_lines_and_never_stops_a_stage(digits):
    changes = digits / "lists" / "CHANGES.jsonl"
    changes.write_text(changes.read_text() + "not json\n" + json.dumps({"change": 3, "kind": "created"}) + "\n")
    with pytest.raises(ChangesFileError) as caught:
        read_history(digits)
    assert [problem.split(": ", 1)[0] for problem in caught.value.problems] == [
        f"{changes}:2", f"{changes}:3"]
    assert list_reference(digits / "lists" / "train.txt").version is None
    assert version_label(digits, "train", "ab" * 32) == "train (unversioned, sha256 abababab)"


@pytest.mark.slow
def test_the_digits_written_again_are_unchanged_whatever_their_history_says(digits_root, tmp_path):
    digits = Path(shutil.copytree(digits_root, tmp_path / "digits"))
    (digits / "lists" / "extra.txt").write_text("raw/0/0000.png 0\n")
    record_noticed(digits, "a list of the user's")  # history files differ from a fresh folder's
    (digits / "lists" / "extra.txt").unlink()
    assert prepare_digits(digits).action == "unchanged"
    (digits / "lists" / "train.txt").write_text("".join(line + "\n" for line in lines(digits, "train")[:-1]))
    with pytest.raises(UserError, match="lists/train.txt has other content"):
        prepare_digits(digits)


def test_without_an_atomic_exchange_two_renames_are_used_and_an_interruption_between_them_is_repaired(
        digits, monkeypatch):
    monkeypatch.setattr(list_versions, "_exchange", lambda a, b: False)
    text = "".join(line + "\n" for line in lines(digits, "train")[:-1])
    commit(digits, {"train": text}, "apply", "cmd", "why", {}, [], {})
    assert (digits / "lists" / "train.txt").read_text() == text and read_history(digits).current()["train"].version == 2
    assert sorted(p.name for p in digits.iterdir() if p.name.startswith(".lists.")) == [".lists.lock"]
    aside = digits / f".lists.previous-{os.uname().nodename}-999999999-20240101-000000"
    os.replace(digits / "lists", aside)  # killed between the two renames: no lists folder
    record_noticed(digits, "the next command")
    assert (digits / "lists" / "train.txt").read_text() == text and not aside.exists()


WRITER = """
import sys
from pathlib import Path
from common.list_versions import commit, current_lists
from common.files import file_sha256
root = Path(sys.argv[1])
body = "".join(f"raw/{i:07d}.png {i % 10}\\n" for i in range(200_000))
for round in range(1000):
    text = f"# round {round}\\n" + body
    expected = {s: file_sha256(p) for s, p in current_lists(root).items()}
    commit(root, {"train": text, "val": text}, "apply", "writer", "round", {}, [], expected)
"""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_a_writer_killed_at_any_moment_leaves_one_whole_version(digits, seed):
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(digits)], cwd=PROJECT_ROOT,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(read_history(digits).changes) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)  # the first commit is published: kill during a later one
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    history = read_history(digits)  # whole: every line parses, numbers in order
    current = history.current()
    assert current["train"].version >= 2  # it was killed while writing, not before its first commit
    for split in ("train", "val"):  # the files on disk are exactly the latest recorded versions, together
        assert file_sha256(digits / "lists" / f"{split}.txt") == current[split].sha256
        assert history_file(digits / "lists", split, current[split].version).read_bytes() == \
            (digits / "lists" / f"{split}.txt").read_bytes()
    assert current["train"].version == current["val"].version
    record_noticed(digits, "after the kill")  # the next writer cleans up what the killed one left
    assert sorted(p.name for p in digits.iterdir() if p.name.startswith(".")) == [".lists.lock"]


def test_an_edit_made_while_the_lists_are_replaced_is_kept_not_lost(digits, monkeypatch):
    copy = list_versions._copy_lists

    def copy_then_edit(lists: Path, staged: Path) -> None:
        copy(lists, staged)
        (lists / "val.txt").write_text((lists / "val.txt").read_text() + "raw/bird/9.png 0\n")  # someone's editor

    monkeypatch.setattr(list_versions, "_copy_lists", copy_then_edit)
    commit(digits, {"train": "raw/bird/0.png 0\n"}, "apply", "cmd", "why", {}, [], {})
    (kept,) = digits.glob("lists.edited-during-change-*")
    assert (kept / "val.txt").read_text().endswith("raw/bird/9.png 0\n")
    assert (digits / "lists" / "train.txt").read_text() == "raw/bird/0.png 0\n"


def test_prepare_data_history_with_a_named_pipe_in_the_lists_is_one_clear_error(digits):
    train = digits / "lists" / "train.txt"
    train.write_text(train.read_text() + "raw/extra.png 3\n")  # a hand edit: history records it first
    changes = digits / "lists" / "CHANGES.jsonl"
    changes.unlink(missing_ok=True)
    os.mkfifo(changes)
    with pytest.raises(UserError, match=r"CHANGES.jsonl: not a file \(a named pipe, a device or a socket\)"):
        record_noticed(digits, "a test")
    assert not [p.name for p in digits.iterdir() if "staging" in p.name]  # nothing half-made left

"""prepare-data apply: a review's decisions become new list versions, every row checked first (each problem with
its line), decisions for another version of the lists refused, nothing half-written. Torch-free."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from common.cli import run_main
from common.errors import UserError
from common.files import read_csv, read_text, write_csv
from common.list_versions import read_history
from common.paths import PROJECT_ROOT, data_dir
from datatools.apply import apply_decisions
from datatools.review import ReviewOptions, review_dataset
from datatools.review.decisions import accept_suggestions
from tests.commands import command_line, command_main
from tests.datatools.small_sets import probabilities_for, write_set

WRONG = {"raw/cat/2.png": 2, "raw/dog/4.png": 0, "raw/bird/1.png": 1}
"""Train images whose out-of-sample probabilities prefer another class (bird/1 is also in dev)."""


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, Path]:
    """A small data set and its review: three label issues, decisions.csv not yet filled."""
    root = write_set(data_dir() / "ds")  # under the data folder: review.json may name it
    source = probabilities_for(root, "train", tmp_path / "crossval", prefer=WRONG, out_of_sample=True)
    folder = review_dataset(ReviewOptions(str(root), (source,), tmp_path / "review")).folder
    return root, folder / "decisions.csv"


def fill(decisions: Path, actions: dict[str, str], extra: list[list[str]] | None = None) -> None:
    header, *rows = read_csv(decisions)
    for row in rows:
        row[header.index("action")] = actions.get(row[header.index("path")], "")
    write_csv(decisions, header, rows + (extra or []))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != ".lists.lock"}


def test_decisions_become_one_new_version_of_every_list_they_change(reviewed):
    root, decisions = reviewed
    before = read_text(root / "lists" / "train.txt")
    raw = {p: p.read_bytes() for p in (root / "raw").rglob("*.png")}
    fill(decisions, {"raw/cat/2.png": "relabel:dog", "raw/bird/1.png": "remove", "raw/dog/4.png": "keep"})
    result = apply_decisions(decisions)
    assert result.counts == {"relabelled": 1, "removed": 1, "kept": 1, "undecided": 0}
    train = read_text(root / "lists" / "train.txt")
    assert train == before.replace("raw/cat/2.png 1\n", "raw/cat/2.png 2\n").replace("raw/bird/1.png 0\n", "")
    assert "raw/bird/1.png" not in read_text(root / "lists" / "dev.txt")  # dev follows train
    change = result.change
    assert change.kind == "apply" and change.change == 2 and change.counts == result.counts
    assert {split: (e["previous"], e["version"]) for split, e in change.lists.items()} == {"dev": (1, 2),
                                                                                          "train": (1, 2)}
    images = {image["path"]: image for image in change.images}
    assert images["raw/cat/2.png"]["from"] == "cat" and images["raw/cat/2.png"]["to"] == "dog"
    assert images["raw/bird/1.png"]["lists"] == ["dev", "train"] and images["raw/bird/1.png"]["change"] == "remove"
    assert "decisions.csv:" in images["raw/bird/1.png"]["why"]
    assert read_text(root / "lists" / "history" / "train.v1.txt") == before  # the previous version is kept
    assert raw == {p: p.read_bytes() for p in (root / "raw").rglob("*.png")}  # nothing leaves raw/
    assert [c.kind for c in read_history(root).changes] == ["created", "apply"]


def test_the_same_decisions_again_are_refused_the_lists_changed_since_the_review(reviewed):
    root, decisions = reviewed
    fill(decisions, {"raw/cat/2.png": "relabel:dog"})
    apply_decisions(decisions)
    before = snapshot(root)
    with pytest.raises(UserError, match=r"decisions.csv:\d+: lists/train.txt changed since the review \(1 decided "
                                        r"row\(s\) are for its earlier version"):
        apply_decisions(decisions)
    assert snapshot(root) == before


def test_a_hand_edit_after_the_review_refuses_its_decisions_too(reviewed):
    root, decisions = reviewed
    fill(decisions, {"raw/cat/2.png": "relabel:dog"})
    train = root / "lists" / "train.txt"
    train.write_text(read_text(train) + "\n")  # the same samples, another file
    with pytest.raises(UserError, match="changed since the review"):
        apply_decisions(decisions)


BAD_ROWS = [
    ("relabel:fish", "unknown class 'fish' in 'relabel:fish'; the classes are ['bird', 'cat', 'dog']"),
    ("delete", "unknown action 'delete'; use relabel:<class>, remove or keep"),
    ("relabel:", "unknown class ''"),
]


@pytest.mark.parametrize("action, message", BAD_ROWS)
def test_an_unknown_action_or_class_is_refused_with_its_line(reviewed, action, message):
    root, decisions = reviewed
    before = snapshot(root)
    fill(decisions, {"raw/cat/2.png": action})
    header, *rows = read_csv(decisions)
    line = 2 + [r[header.index("path")] for r in rows].index("raw/cat/2.png")
    with pytest.raises(UserError) as caught:
        apply_decisions(decisions)
    assert f"decisions.csv:{line}: {message}" in str(caught.value)
    assert snapshot(root) == before


def test_every_bad_row_is_reported_at_once_and_nothing_is_written(reviewed):
    root, decisions = reviewed
    before = snapshot(root)
    header = read_csv(decisions)[0]

    def row(**cells: str) -> list[str]:
        return [cells.get(column, "") for column in header]

    sha = read_csv(decisions)[1][header.index("list_sha256")]
    fill(decisions, {"raw/cat/2.png": "remove", "raw/dog/4.png": "keep"}, [
        row(split="train", path="raw/nowhere.png", list_sha256=sha, action="remove"),
        row(split="holdout", path="raw/cat/0.png", list_sha256=sha, action="remove"),
        row(split="train", path="raw/cat/2.png", list_sha256=sha, action="relabel:bird"),
        row(split="train", path="../outside.png", list_sha256=sha, action="remove"),
        ["too", "few"]])
    with pytest.raises(UserError) as caught:
        apply_decisions(decisions)
    problems = caught.value.problems
    assert len(problems) == 5 and all(":" in p.split(" ")[0] for p in problems)
    text = "\n".join(problems)
    assert "decisions.csv:5: 'raw/nowhere.png' is not in lists/train.txt" in text
    assert "decisions.csv:6: list 'holdout' is not in the data set" in text
    assert "decisions.csv:7: 'raw/cat/2.png' is decided twice, differently (first on" in text
    assert "decisions.csv:8: '../outside.png' is not in lists/train.txt" in text
    assert "decisions.csv:9: 2 fields, the header has 16" in text
    assert snapshot(root) == before


def test_a_decisions_file_without_its_columns_or_data_set_is_refused(reviewed, tmp_path):
    root, decisions = reviewed
    moved = tmp_path / "elsewhere" / "decisions.csv"
    moved.parent.mkdir()
    moved.write_bytes(decisions.read_bytes())
    with pytest.raises(UserError, match="no review.json beside it to say which data set it is for; name it with "
                                        "--dataset"):
        apply_decisions(moved)
    assert apply_decisions(moved, str(root)).counts["undecided"] == 3
    write_csv(moved, ["path", "action"], [["raw/cat/2.png", "remove"]])
    with pytest.raises(UserError, match=r"decisions.csv:1: missing column\(s\) \['split', 'list_sha256'\]"):
        apply_decisions(moved, str(root))
    with pytest.raises(UserError, match="decisions file not found"):
        apply_decisions(tmp_path / "none.csv", str(root))


def test_a_decision_that_would_empty_a_list_is_refused(reviewed):
    root, decisions = reviewed
    header, *rows = read_csv(decisions)
    sha = read_history(root).current()["val"].sha256
    val = [line.split()[0] for line in read_text(root / "lists" / "val.txt").splitlines()[1:]]
    extra = [[{"split": "val", "path": path, "list_sha256": sha, "action": "remove"}.get(c, "") for c in header]
             for path in val]
    write_csv(decisions, header, rows + extra)
    with pytest.raises(UserError, match="would leave lists/val.txt without samples; nothing was written"):
        apply_decisions(decisions)


def test_accepting_the_suggestions_fills_only_empty_actions_of_the_kinds_asked(reviewed):
    root, decisions = reviewed
    fill(decisions, {"raw/dog/4.png": "keep"})
    assert accept_suggestions(decisions, ("label_issue",)) == 2
    actions = {r[4]: r[-2] for r in read_csv(decisions)[1:]}
    assert actions == {"raw/cat/2.png": "relabel:dog", "raw/dog/4.png": "keep", "raw/bird/1.png": "relabel:cat"}


def test_the_command_line_applies_previews_and_refuses_with_status_2(reviewed, capsys):
    root, decisions = reviewed
    fill(decisions, {"raw/cat/2.png": "relabel:dog"})
    main = command_main("prepare-data")
    assert run_main(main, ["apply", str(decisions), "--dry-run"]) == 0
    assert "would change train (18 samples)" in capsys.readouterr().out and len(read_history(root).changes) == 1
    assert run_main(main, ["apply", str(decisions)]) == 0
    assert "train v1 -> v2 (18 samples); recorded as change 2" in capsys.readouterr().out
    assert run_main(main, ["apply", str(decisions)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 problem in the decisions:") and "Traceback" not in err
    assert run_main(main, ["history", "--dataset", str(root), "--images"]) == 0
    out = capsys.readouterr().out
    assert "  2  " in out and "apply" in out and "relabel raw/cat/2.png: cat -> dog" in out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_apply_killed_at_a_random_moment_leaves_the_previous_version_or_the_next_whole(reviewed, seed):
    root, decisions = reviewed
    fill(decisions, {"raw/cat/2.png": "relabel:dog", "raw/bird/1.png": "remove"})
    before = {split: read_text(root / "lists" / f"{split}.txt") for split in ("train", "dev")}
    process = subprocess.Popen(command_line("prepare-data", "apply", str(decisions)), cwd=PROJECT_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.2, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    after = {split: read_text(root / "lists" / f"{split}.txt") for split in ("train", "dev")}
    versions = {split: v.version for split, v in read_history(root).current().items()}
    if after == before:
        assert versions == dict.fromkeys(["dev", "test", "train", "val"], 1)
    else:  # published whole: both lists changed, and the history says so
        assert "raw/bird/1.png" not in after["train"] + after["dev"] and "raw/cat/2.png 2" in after["train"]
        assert versions["train"] == versions["dev"] == 2
    assert subprocess.run(command_line("prepare-data", "history", "--dataset", str(root)), cwd=PROJECT_ROOT,
                          capture_output=True).returncode == 0
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [".lists.lock"]  # the killed one's debris
    assert read_text(root / "lists" / "train.txt") == after["train"]  # ... is removed, the lists stay as they are


def test_prepare_data_apply_with_a_review_json_naming_a_data_set_outside_the_data_folder_is_refused(reviewed,
                                                                                                       tmp_path):
    root, decisions = reviewed
    elsewhere = write_set(tmp_path / "elsewhere")  # another data set on the machine, never named
    record = decisions.parent / "review.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "dataset": str(elsewhere)}))
    fill(decisions, {"raw/cat/2.png": "remove"})
    before, other = snapshot(root), snapshot(elsewhere)
    with pytest.raises(UserError, match=r"review.json: names the data set .*elsewhere, outside the data folder .*; "
                                        r"apply there only by naming it: --dataset"):
        apply_decisions(decisions)
    assert snapshot(root) == before and snapshot(elsewhere) == other

"""review: label issues from out-of-sample probabilities only, duplicates across lists first, unreadable and odd
files; review.html and decisions.csv safe whatever the names. Torch-free: runs on the evaluation machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from common.files import read_csv, read_text
from datatools.review import ReviewOptions, review_dataset
from datatools.review.decisions import COLUMNS
from datatools.review.duplicates import duplicate_pairs, fingerprints
from tests.datatools.small_sets import jpeg_copy, probabilities_for, trained_on, write_set


def append(root: Path, split: str, lines: str) -> None:
    path = root / "lists" / f"{split}.txt"
    path.write_text(read_text(path) + lines, encoding="utf-8")


def rows_of(folder: Path) -> list[dict[str, str]]:
    header, *rows = read_csv(folder / "decisions.csv")
    return [dict(zip(header, row)) for row in rows]


def test_copies_across_lists_come_first_and_name_the_copy_in_train(tmp_path):
    root = write_set(tmp_path / "ds")
    jpeg_copy(root / "raw/cat/8.png", root / "raw/planted/cat8.jpg")  # a test image, re-encoded and resized
    shutil.copy(root / "raw/dog/0.png", root / "raw/planted/dog0.png")  # a train image, copied as it is
    append(root, "train", "raw/planted/cat8.jpg 1\nraw/planted/dog0.png 2\n")
    result = review_dataset(ReviewOptions(str(root), out=tmp_path / "review"))
    kinds = [(f.kind, f.path, f.duplicate_of) for f in result.findings]
    assert kinds == [("cross_split_duplicate", "raw/planted/cat8.jpg", "raw/cat/8.png"),
                     ("duplicate", "raw/planted/dog0.png", "raw/dog/0.png")]
    leak, copy = result.findings
    assert leak.split == "train" and leak.duplicate_split == "test" and 0.99 <= leak.similarity < 1
    assert copy.similarity == 1.0 and copy.detail.startswith("the same pixels as raw/dog/0.png")
    rows = rows_of(result.folder)
    assert [r["finding"] for r in rows] == ["1", "2"] and all(r["action"] == "" for r in rows)
    assert rows[0]["list_sha256"] == result.record.lists["train"]["sha256"]
    assert result.record.counts["with_probabilities"] == 0 and "labels were not checked" in result.record.notes[0]
    assert (result.folder / "review.html").is_file() and len(list((result.folder / "thumbs").iterdir())) == 4


def test_near_duplicates_need_a_close_hash_and_close_pixels(tmp_path):
    root = write_set(tmp_path / "ds")
    jpeg_copy(root / "raw/bird/3.png", root / "raw/bird/up.jpg", scale=1.1)
    prints = fingerprints(root, [f"raw/{c}/{i}.png" for c in ("bird", "cat", "dog") for i in range(10)]
                          + ["raw/bird/up.jpg"])
    pairs = duplicate_pairs(prints)
    assert [(prints.paths[p.first], prints.paths[p.second]) for p in pairs] == [("raw/bird/3.png", "raw/bird/up.jpg")]
    assert duplicate_pairs(prints, min_similarity=1.0) == [] and duplicate_pairs(prints, max_distance=0) == []


def test_label_issues_come_from_out_of_sample_probabilities_with_a_suggested_label(tmp_path):
    root = write_set(tmp_path / "ds")
    wrong = {"raw/cat/2.png": 2, "raw/dog/4.png": 0}  # the probabilities say dog and bird
    source = probabilities_for(root, "train", tmp_path / "crossval", prefer=wrong, out_of_sample=True)
    test = probabilities_for(root, "test", tmp_path / "eval-test", training_lists=trained_on(root))
    result = review_dataset(ReviewOptions(str(root), (source, test), tmp_path / "review"))
    issues = {f.path: f for f in result.findings if f.kind == "label_issue"}
    assert set(issues) == set(wrong)
    assert {path: issue.suggested_label for path, issue in issues.items()} == wrong
    assert all(issue.label_quality < 0.1 and issue.split == "train" for issue in issues.values())
    rows = {r["path"]: r for r in rows_of(result.folder)}
    assert rows["raw/cat/2.png"]["given_label"] == "cat" and rows["raw/cat/2.png"]["suggested_label"] == "dog"
    assert [s["kind"] for s in result.record.sources] == ["cross-validation", "evaluation"]
    assert result.record.counts["with_probabilities"] == 18 + 6
    assert result.record.notes == ["no out-of-sample probabilities for val: their labels were not checked"]


def test_in_sample_probabilities_are_refused(tmp_path):
    root = write_set(tmp_path / "ds")
    training = trained_on(root)
    on_train = probabilities_for(root, "train", tmp_path / "eval-train", training_lists=training)
    with pytest.raises(UserError, match=r"in-sample probabilities: the model test model trained on 18 of these 18"):
        review_dataset(ReviewOptions(str(root), (on_train,)))
    on_dev = probabilities_for(root, "dev", tmp_path / "eval-dev", training_lists=training)
    with pytest.raises(UserError, match="in-sample"):  # dev is drawn from train
        review_dataset(ReviewOptions(str(root), (on_dev,)))
    unknown = probabilities_for(root, "test", tmp_path / "eval-old")  # a card without training lists, no run
    with pytest.raises(UserError, match="cannot tell whether the model trained on these images"):
        review_dataset(ReviewOptions(str(root), (unknown,)))
    assert not (root.parent / "output").exists()


def test_the_training_list_is_found_in_the_history_after_it_changed(tmp_path):
    from common.list_versions import record_noticed

    root = write_set(tmp_path / "ds")
    training = trained_on(root)  # trained on train v1
    lines = read_text(root / "lists" / "train.txt").splitlines(keepends=True)
    (root / "lists" / "train.txt").write_text("".join(lines[:-1]))  # train v2: one image fewer
    record_noticed(root, "a hand edit")
    on_dev = probabilities_for(root, "dev", tmp_path / "eval-dev", training_lists=training)
    with pytest.raises(UserError, match=r"trained on 6 of these 6 images"):
        review_dataset(ReviewOptions(str(root), (on_dev,)))
    training["train"]["sha256"] = "0" * 64
    gone = probabilities_for(root, "test", tmp_path / "eval-test", training_lists=training)
    with pytest.raises(UserError, match="is neither a current list of the data set nor in its lists/history/"):
        review_dataset(ReviewOptions(str(root), (gone,)))


def test_probabilities_must_be_of_the_current_lists_of_this_data_set_once_each(tmp_path):
    root = write_set(tmp_path / "ds")
    other = write_set(tmp_path / "other")
    test = probabilities_for(root, "test", tmp_path / "eval-test", training_lists=trained_on(root))
    elsewhere = probabilities_for(other, "test", tmp_path / "eval-other", training_lists=trained_on(other))
    with pytest.raises(UserError, match=f"it is of data set {other.resolve()}"):
        review_dataset(ReviewOptions(str(root), (elsewhere,)))
    with pytest.raises(UserError, match="already has probabilities from"):
        review_dataset(ReviewOptions(str(root), (test, test / "predictions.csv")))
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(test / "predictions.csv", bare / "predictions.csv")
    with pytest.raises(UserError, match="no evaluation.json beside it"):
        review_dataset(ReviewOptions(str(root), (bare,)))
    text = read_text(root / "lists" / "test.txt")
    (root / "lists" / "test.txt").write_text(text.replace("raw/cat/8.png 1", "raw/cat/8.png 2"))
    with pytest.raises(UserError, match=r"another version of lists/test.txt \('raw/cat/8.png' has label 1 in these "
                                        r"predictions but is labelled 2 there now\)"):
        review_dataset(ReviewOptions(str(root), (test,)))
    with pytest.raises(UserError, match="no predictions.csv there"):
        review_dataset(ReviewOptions(str(root), (tmp_path / "nothing",)))


def test_unreadable_and_odd_files_are_findings(tmp_path):
    root = write_set(tmp_path / "ds")
    (root / "raw/bird/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(root / "raw/bird/tiny.png")
    append(root, "train", "raw/bird/broken.png 0\nraw/bird/tiny.png 0\n")
    findings = review_dataset(ReviewOptions(str(root), out=tmp_path / "review")).findings
    assert [(f.kind, f.path) for f in findings] == [("unreadable", "raw/bird/broken.png"),
                                                    ("odd_file", "raw/bird/tiny.png")]
    assert "cannot be decoded" in findings[0].detail and "4x4 pixels, far smaller than most" in findings[1].detail


HOSTILE_CLASSES = ('<b>bold</b>', 'comma, "quoted"', "=1+1")
HOSTILE_NAMES = tuple(f"{n}.png" for n in ("<img src=x onerror=alert(1)>", "a,b", '"q"', "semi;colon", "x & y",
                                           "dollar $x^{$", "ünïcode", "7", "8", "9"))


def test_hostile_class_and_file_names_are_safe_in_the_page_and_the_decisions(tmp_path):
    root = write_set(tmp_path / "ds", HOSTILE_CLASSES, HOSTILE_NAMES)
    first = f"raw/{HOSTILE_CLASSES[0]}/{HOSTILE_NAMES[0]}"
    shutil.copy(root / first, root / f"raw/{HOSTILE_CLASSES[1]}/copy {HOSTILE_NAMES[1]}")
    append(root, "test", f"raw/{HOSTILE_CLASSES[1]}/copy {HOSTILE_NAMES[1]} 1\n")  # a train image copied to test
    wrong = {f"raw/{HOSTILE_CLASSES[2]}/{HOSTILE_NAMES[1]}": 0}
    source = probabilities_for(root, "train", tmp_path / "crossval", prefer=wrong, out_of_sample=True)
    result = review_dataset(ReviewOptions(str(root), (source,), tmp_path / "review"))
    rows = rows_of(result.folder)
    assert [(r["kind"], r["path"], r["duplicate_of"]) for r in rows] == [
        ("cross_split_duplicate", first, f"raw/{HOSTILE_CLASSES[1]}/copy {HOSTILE_NAMES[1]}"),
        ("label_issue", next(iter(wrong)), "")]
    assert rows[1]["given_label"] == HOSTILE_CLASSES[2] and rows[1]["suggested_label"] == HOSTILE_CLASSES[0]
    assert list(read_csv(result.folder / "decisions.csv")[0]) == list(COLUMNS)
    html = read_text(result.folder / "review.html")
    for name in (*HOSTILE_CLASSES, HOSTILE_NAMES[0]):
        assert name not in html or name == "=1+1"  # every name with markup characters appears escaped only
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<img src=x" not in html and "<b>bold" not in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script id="probe">
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", ok + "/" + images.length);
  document.body.setAttribute("data-cases", document.querySelectorAll(".case").length);
  document.body.setAttribute("data-injected", document.querySelectorAll("[onerror], b b, script:not(#probe)").length);
});
</script></body>"""


def test_the_review_page_opens_in_a_browser_with_every_image(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("IMAGEPIPE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (IMAGEPIPE_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    root = write_set(tmp_path / "ds", HOSTILE_CLASSES, HOSTILE_NAMES)
    jpeg_copy(root / f"raw/{HOSTILE_CLASSES[0]}/{HOSTILE_NAMES[8]}", root / "raw/planted/<copy>.jpg")
    append(root, "train", "raw/planted/<copy>.jpg 0\n")
    source = probabilities_for(root, "train", tmp_path / "crossval", out_of_sample=True,
                               prefer={f"raw/{HOSTILE_CLASSES[1]}/{HOSTILE_NAMES[0]}": 2})
    folder = review_dataset(ReviewOptions(str(root), (source,), tmp_path / "review")).folder
    probe = folder / "probe.html"
    probe.write_text(read_text(folder / "review.html").replace("</body>", PROBE))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--allow-file-access-from-files",
             "--virtual-time-budget=10000"]
    result = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, timeout=120)
    images = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    cases = re.search(r'data-cases="(\d+)"', result.stdout)
    injected = re.search(r'data-injected="(\d+)"', result.stdout)
    assert images and cases and injected, f"the page did not finish loading: {result.stderr[-2000:]}"
    assert images.group(1) == images.group(2) == "3"  # the leak's image and its copy, the label issue's image
    assert cases.group(1) == "2" and injected.group(1) == "0"  # no name became markup

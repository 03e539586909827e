"""The studio's review pages: the reviews listed newest first, a review's findings with their images and escaped
names, keep/remove/relabel buttons writing decisions.csv (checked as prepare-data apply checks it), applying the
decisions as prepare-data apply does, and names that would leave output/review refused. Torch-free."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.errors import UserError
from common.files import read_csv, read_json, read_text, write_json
from common.list_versions import read_history
from common.paths import data_dir, output_dir
from datatools.review import ReviewOptions, review_dataset
from datatools.review.decisions import set_action
from studio.pages.review import review_folder
from tests.datatools.small_sets import probabilities_for, write_set
from tests.studio.conftest import SAME_ORIGIN

HOSTILE = "<img src=x onerror=alert(1)>"
"""A class name that would run a script if a page wrote it unescaped."""

CLASSES = ("bird", "cat", HOSTILE)
WRONG = {"raw/cat/2.png": 2, "raw/bird/1.png": 1}
"""Train images whose out-of-sample probabilities prefer another class: findings 1 and 2 (label issues)."""


@dataclass(frozen=True)
class Template:
    """A data set and its review, written once per module, copied into each test's folders."""

    data: Path
    review: Path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("review-template")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("IMAGEPIPE_DATA", "IMAGEPIPE_MODEL", "IMAGEPIPE_OUTPUT"):
            patch.setenv(variable, str(base / variable.lower()))
        root = write_set(data_dir() / "ds", CLASSES)
        shutil.copy(root / "raw/cat/0.png", root / "raw/cat/copy.png")  # finding 3: a duplicate within train
        train = root / "lists" / "train.txt"
        train.write_text(read_text(train) + "raw/cat/copy.png 1\n", encoding="utf-8")
        source = probabilities_for(root, "train", base / "crossval", prefer=WRONG, out_of_sample=True)
        folder = review_dataset(ReviewOptions(str(root), (source,), output_dir() / "review" / "ds-1")).folder
    return Template(root, folder)


@dataclass(frozen=True)
class Reviewed:
    """A test's own copy of the template: the data set and the review folder."""

    root: Path
    folder: Path

    @property
    def decisions(self) -> Path:
        return self.folder / "decisions.csv"

    def actions(self) -> dict[str, str]:
        header, *rows = read_csv(self.decisions)
        return {row[header.index("finding")]: row[header.index("action")] for row in rows}


def copy_review(template: Template, name: str = "ds-1", dataset: Path | None = None,
                created: str | None = None) -> Reviewed:
    """The template's review as ``output/review/<name>`` of this test, naming ``dataset`` (default: a copy of the
    template's data set under this test's data folder)."""
    root = dataset or data_dir() / "ds"
    if not root.exists():
        shutil.copytree(template.data, root)
    folder = output_dir() / "review" / name
    shutil.copytree(template.review, folder)
    record = read_json(folder / "review.json")
    record["dataset"] = str(root)
    record["created"] = created or record["created"]
    write_json(folder / "review.json", record)
    return Reviewed(root, folder)


@pytest.fixture
def reviewed(template: Template) -> Reviewed:
    return copy_review(template)


def test_set_action_writes_one_cell_checked_as_apply_checks_it(reviewed):
    set_action(reviewed.decisions, 2, f"relabel:{HOSTILE}", CLASSES)
    set_action(reviewed.decisions, 3, " remove ", CLASSES)
    assert reviewed.actions() == {"1": "", "2": f"relabel:{HOSTILE}", "3": "remove"}
    set_action(reviewed.decisions, 3, "", CLASSES)  # undecided again
    assert reviewed.actions()["3"] == ""
    before = reviewed.decisions.read_bytes()
    for finding, action, message in [(1, "relabel:fish", r"decisions.csv: finding 1: unknown class 'fish'"),
                                     (1, "delete", r"decisions.csv: finding 1: unknown action 'delete'"),
                                     (99, "keep", r"decisions.csv: no finding 99")]:
        with pytest.raises(UserError, match=message):
            set_action(reviewed.decisions, finding, action, CLASSES)
    assert reviewed.decisions.read_bytes() == before


def test_the_list_shows_every_review_newest_first_with_its_counts(signed, template):
    older = copy_review(template, "ds-older", created="2020-01-01T00:00:00+00:00")
    newer = copy_review(template, "ds-newer", created="2030-01-01T00:00:00+00:00")
    set_action(newer.decisions, 1, "keep", CLASSES)
    broken = output_dir() / "review" / "ds-broken"
    shutil.copytree(older.folder, broken)
    (broken / "review.json").write_text("[1, 2]")
    html = signed.client.get("/review").text
    assert re.findall(r'data-review="([^"]+)"', html) == ["ds-newer", "ds-older", "ds-broken"]
    rows = dict(re.findall(r'data-review="([^"]+)">(.*?)</tr>', html, re.S))
    assert "1 of 3" in rows["ds-newer"] and "0 of 3" in rows["ds-older"]
    assert "2 label issue, 1 duplicate" in rows["ds-newer"] and str(newer.root) in rows["ds-newer"]
    assert "not a review record of this project" in rows["ds-broken"]


def test_a_review_shows_every_finding_with_its_images_and_every_name_escaped(signed, reviewed):
    response = signed.client.get("/review/ds-1")
    assert response.status_code == 200
    html = response.text
    assert re.findall(r'id="finding-(\d+)"', html) == ["1", "2", "3"]
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the class, as suggested label and relabel choice
    assert f'value="relabel:{HOSTILE}"'.replace("<", "&lt;").replace(">", "&gt;") in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images[:2] == ["/files/data/ds/raw/bird/1.png", "/files/data/ds/raw/cat/2.png"]
    assert images[2:] == ["/files/data/ds/raw/cat/copy.png", "/files/data/ds/raw/cat/0.png"]  # the copy beside
    served = signed.client.get(images[0])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert '<script src="/static/review.js" defer></script>' in html and 'data-key="1"' in html
    assert "<kbd>1</kbd> keep" in html and "<kbd>j, n, ↓</kbd> next finding" in html
    assert signed.client.get("/static/review.js").status_code == 200


def test_the_buttons_set_actions_and_go_on_to_the_next_finding(signed, reviewed):
    response = signed.post("/review/ds-1/decide", {"finding": "1", "action": "keep"})
    assert response.status_code == 303 and response.headers["location"] == "/review/ds-1?page=1#finding-2"
    response = signed.post("/review/ds-1/decide", {"finding": "2", "action": f"relabel:{HOSTILE}"})
    assert response.headers["location"] == "/review/ds-1?page=1#finding-3"
    response = signed.post("/review/ds-1/decide", {"finding": "3", "action": "remove"})
    assert response.headers["location"] == "/review/ds-1?page=1#finding-3"  # the last stays
    assert reviewed.actions() == {"1": "keep", "2": f"relabel:{HOSTILE}", "3": "remove"}
    page = signed.client.get("/review/ds-1").text
    assert page.count("decided: <b>") == 3 and 'id="decided">3 of 3<' in page
    before = reviewed.decisions.read_bytes()
    bad = signed.post("/review/ds-1/decide", {"finding": "1", "action": "relabel:fish"})
    assert bad.status_code == 400 and "finding 1: unknown class &#39;fish&#39;" in bad.text
    assert signed.post("/review/ds-1/decide", {"finding": "99", "action": "keep"}).status_code == 400
    assert signed.post("/review/ds-1/decide", {"finding": "x", "action": "keep"}).status_code == 400
    forged = signed.client.post("/review/ds-1/decide", data={"finding": "1", "action": "remove"},
                                headers=SAME_ORIGIN, follow_redirects=False)
    assert forged.status_code == 403
    assert reviewed.decisions.read_bytes() == before


def test_applying_runs_prepare_data_apply_and_shows_the_new_list_versions(signed, reviewed):
    signed.post("/review/ds-1/decide", {"finding": "2", "action": f"relabel:{HOSTILE}"})
    signed.post("/review/ds-1/decide", {"finding": "3", "action": "remove"})
    train = reviewed.root / "lists" / "train.txt"
    before = read_text(train)
    checked = signed.post("/review/ds-1/apply", {"mode": "check"})
    assert checked.status_code == 200 and "what applying would do" in checked.text
    assert "relabelled 1, removed 1, kept 0, undecided 1" in checked.text and read_text(train) == before
    applied = signed.post("/review/ds-1/apply", {"mode": "apply"})
    assert applied.status_code == 200, applied.text
    change = read_history(reviewed.root).changes[-1]
    assert change.kind == "apply" and f"Applied: change {change.change} of" in applied.text
    entry = change.lists["train"]  # v2 is the hand edit that planted the copy, recorded first
    assert (entry["previous"], entry["version"]) == (2, 3) and list(change.lists) == ["train"]
    assert re.search(r"<td>train</td>\s*<td>v2 → v3</td>\s*<td>18</td>", applied.text)
    assert "raw/cat/copy.png" not in read_text(train) and "raw/cat/2.png 2\n" in read_text(train)
    again = signed.post("/review/ds-1/apply", {"mode": "apply"})
    assert again.status_code == 400 and "changed since the review" in again.text


@pytest.mark.parametrize("name", [".hidden", "ds-1%2F..", "..%2F..%2Fetc", "nothing-here", "%2e%2e", "a%5Cb",
                                  "ds-1%00"])
def test_names_that_leave_output_review_or_name_no_review_are_refused(signed, reviewed, name):
    (output_dir() / "review" / ".hidden").mkdir()
    (output_dir() / "review" / ".hidden" / "decisions.csv").write_text("finding,action\n")
    response = signed.client.get(f"/review/{name}")
    assert response.status_code in (400, 404), name
    assert "finding-1" not in response.text
    decided = signed.post(f"/review/{name}/decide", {"finding": "1", "action": "keep"})
    assert decided.status_code in (400, 404), name


@pytest.mark.parametrize("name", ["..", ".", "", "../review/ds-1", "ds-1/..", "a\\b", ".hidden", "ds-1\n"])
def test_only_a_plain_folder_name_names_a_review(reviewed, name):
    with pytest.raises(UserError, match="is not the name of a review"):
        review_folder(name)
    assert review_folder("ds-1") == reviewed.folder


def test_a_review_folder_linked_from_elsewhere_is_refused(signed, reviewed, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(reviewed.folder, outside)
    (output_dir() / "review" / "linked").symlink_to(outside)
    assert signed.client.get("/review/linked").status_code == 404
    assert signed.post("/review/linked/decide", {"finding": "1", "action": "keep"}).status_code == 404


def test_images_outside_the_studio_folders_are_named_not_served(signed, template, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(template.data, elsewhere)
    copy_review(template, "ds-away", dataset=elsewhere)
    html = signed.client.get("/review/ds-away").text
    assert "<img " not in html and "/files/" not in html.split('id="findings"')[1]
    assert "<code>raw/bird/1.png</code> (not served" in html


def test_a_long_review_is_shown_a_page_at_a_time_and_a_decision_goes_on_to_the_next_page(signed, reviewed,
                                                                                        monkeypatch):
    monkeypatch.setattr("studio.pages.review.PAGE_SIZE", 2)
    first = signed.client.get("/review/ds-1").text
    assert re.findall(r'id="finding-(\d+)"', first) == ["1", "2"] and "page 1 of 2 (3 findings)" in first
    assert 'href="/review/ds-1?page=2" rel="next"' in first
    assert re.findall(r'id="finding-(\d+)"', signed.client.get("/review/ds-1?page=2").text) == ["3"]
    assert re.findall(r'id="finding-(\d+)"', signed.client.get("/review/ds-1?page=99").text) == ["3"]
    response = signed.post("/review/ds-1/decide", {"finding": "2", "action": "keep"})
    assert response.headers["location"] == "/review/ds-1?page=2#finding-3"

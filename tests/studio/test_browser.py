"""The studio in a real browser (Debian's Chromium, driven by Playwright with ``executable_path``), from a second
client with only the printed URL: start a run from the form and see its live curve gain points, queue a second
run and cancel it (recorded preempted), continue it, compare two runs, open an evaluation's report, and relabel a
review finding (checked in decisions.csv). A class named like a script is text in the DOM, and no dialog opens.

Screenshots are kept under the test's folder; with ``IMAGEPIPE_SCREENSHOTS=<folder>`` they are copied there too
(docs/studio/ holds the ones docs/studio.md shows).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from common.files import read_csv
from common.paths import PROJECT_ROOT, data_dir, model_dir, output_dir
from common.run_folder import RunFolder, RunStatus
from tests.studio.conftest import TOKEN
from tests.studio.test_runs_live import wait_for
from tests.studio.test_server import free_port, start_studio

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<img src=x onerror=alert(1)>"


def browsers_json_major() -> int:
    """The Chromium major version this Playwright release was built for (its browsers.json)."""
    import playwright
    browsers = json.loads((Path(playwright.__file__).parent / "driver" / "package" / "browsers.json").read_text())
    return int(next(b for b in browsers["browsers"] if b["name"] == "chromium")["browserVersion"].split(".")[0])


def chromium_major() -> int:
    """The installed Chromium's major version."""
    text = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout
    return int(re.search(r"(\d+)\.\d+\.\d+", text).group(1))


def require_browser() -> None:
    """Skip (fail under ``IMAGEPIPE_REQUIRE_BROWSER``) without Chromium or Playwright; fail when they drifted apart."""
    problem = None
    if CHROMIUM is None:
        problem = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
    else:
        if importlib.util.find_spec("playwright") is None:
            problem = "playwright is not installed (pipenv sync --dev)"
    if problem:
        if os.environ.get("IMAGEPIPE_REQUIRE_BROWSER"):
            pytest.fail(problem)
        pytest.skip(problem)


def test_playwright_and_chromium_are_the_same_major_version():
    require_browser()
    built_for, installed = browsers_json_major(), chromium_major()
    assert built_for == installed, (
        f"Playwright's browsers.json names Chromium {built_for}, but {CHROMIUM} is Chromium {installed}: pin the "
        "Playwright release whose browsers.json names the installed major version (Pipfile [dev-packages])")


def write_review() -> Path:
    """A data set with a hostile class name and a review with label issues, as `pipenv run review` writes it."""
    from datatools.review import ReviewOptions, review_dataset
    from tests.datatools.small_sets import probabilities_for, write_set

    root = write_set(data_dir() / "hostile", ("bird", "cat", HOSTILE))
    source = probabilities_for(root, "train", output_dir() / "crossval-hostile", prefer={"raw/cat/2.png": 2},
                               out_of_sample=True)
    return review_dataset(ReviewOptions(str(root), (source,), output_dir() / "review" / "hostile-1")).folder


def evaluate_run(run: Path) -> None:
    """Export the run and evaluate the model on the digits' test list (as a user would, with the commands)."""
    env = {**os.environ}
    for command in (["-m", "deploy", "--run", str(run), "--parity-samples", "64"],
                    ["-m", "evaluate", "--model", str(model_dir() / f"{run.name}.onnx"),
                     "--list", str(data_dir() / "digits" / "lists" / "test.txt"), "--name", "first-test"]):
        result = subprocess.run([sys.executable, *command], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]


class Shots:
    """Screenshots, numbered in the order taken."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str, full_page: bool = True) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        target = os.environ.get("IMAGEPIPE_SCREENSHOTS")
        if target:  # for the docs: 256 colours, a fraction of the size
            Path(target).mkdir(parents=True, exist_ok=True)
            with Image.open(path) as shot:
                shot.convert("RGB").quantize(256).save(Path(target) / f"{name}.png", optimize=True)


def launch(page, base: str, name: str, epochs: str) -> None:
    page.goto(base + "/launch")
    page.fill("#in-name", name)
    page.check("#in-dev")
    page.fill("#in-epochs", epochs)
    page.click("#start")
    page.wait_for_url(re.compile(r".*/queue$"), timeout=120_000)


def run_named(prefix: str) -> Path:
    """The run folder ``<prefix>-<time>``, once its manifest is written (the run has begun)."""
    manifest = wait_for(lambda: next(iter(sorted((output_dir() / "train").glob(f"{prefix}-*/manifest.json"))), None),
                        240, f"the run {prefix}")
    return manifest.parent


def test_from_a_second_browser_with_only_the_printed_url(tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    review = write_review()
    port = free_port()
    studio = start_studio(port, tmp_path / "studio.log")
    dialogs: list[str] = []
    try:
        url = wait_for(lambda: re.search(r"http://\S+/\?token=\S+", (tmp_path / "studio.log").read_text()), 60,
                       "the printed URL").group(0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            shots = Shots(page, tmp_path / "screenshots")
            page.goto(url)
            assert page.url.endswith("/runs") and TOKEN not in page.url  # the token left the address bar
            check_launch_and_watch(page, shots)
            check_cancel_and_continue(page, shots)
            check_compare_and_report(page, shots)
            check_review(page, shots, review)
            browser.close()
    finally:
        studio.terminate()
        studio.wait(timeout=60)
    assert dialogs == []  # no script a name carried ever ran


def check_launch_and_watch(page, shots: Shots) -> None:
    base = page.url.rsplit("/", 1)[0]
    page.goto(base + "/launch")
    page.fill("#in-name", "bad/name")
    page.fill("#in-epochs", "two")
    page.click("#start")
    assert "no '/'" in page.inner_text("#error-name") and "whole number" in page.inner_text("#error-epochs")
    shots.take("launch-errors")
    launch(page, base, "first", "1")
    shots.take("queue")
    run = run_named("first")
    page.goto(f"{base}/runs/{run.name}")
    # (the studio's pages forbid evaluated strings, so the test waits on selectors, as a person watches the page)
    page.wait_for_selector("#chart-loss[data-points]:not([data-points='0'])", timeout=240_000)
    page.wait_for_selector("#status[data-status=finished]", timeout=240_000)
    assert int(page.get_attribute("#chart-loss", "data-points")) >= 2
    assert int(page.inner_text("#epochs")) == 1
    page.wait_for_selector("#figures img[alt='samples/train_batch.png']")
    shots.take("run-live")


def check_cancel_and_continue(page, shots: Shots) -> None:
    base = page.url.split("/runs")[0]
    launch(page, base, "second", "300")
    run = run_named("second")
    wait_for(lambda: RunFolder(run).read_metrics(), 240, "a first epoch of the second run")
    page.goto(f"{base}/queue")
    page.click("tr[data-state=running] button.cancel")
    page.wait_for_url(re.compile(r".*/queue$"))
    wait_for(lambda: RunFolder(run).status() is RunStatus.PREEMPTED, 240, "the run to be preempted")
    page.goto(f"{base}/queue")
    page.wait_for_selector("tr[data-state=ended] >> text=run preempted", timeout=60_000)
    page.goto(f"{base}/runs/{run.name}")
    page.wait_for_selector("#status[data-status=preempted]", timeout=60_000)
    shots.take("preempted")
    epochs = len(RunFolder(run).read_metrics())
    page.click("#continue")
    page.wait_for_url(re.compile(r".*/queue$"))
    wait_for(lambda: len(RunFolder(run).read_metrics()) > epochs, 240, "an epoch after continuing")
    page.goto(f"{base}/runs/{run.name}")
    page.wait_for_selector("#status[data-status=running]", timeout=60_000)
    page.goto(f"{base}/queue")
    page.click("tr[data-state=running] button.cancel")
    wait_for(lambda: RunFolder(run).status() is RunStatus.PREEMPTED, 240, "the continued run to stop")
    assert len(RunFolder(run).read_manifest().resumed) == 1


def check_compare_and_report(page, shots: Shots) -> None:
    base = page.url.split("/queue")[0]
    first = run_named("first")
    evaluate_run(first)
    page.goto(f"{base}/runs?sort=name&order=asc")
    shots.take("runs")
    for box in page.query_selector_all("#runs input[name=run]"):
        box.check()
    page.click("text=Compare the ticked runs")
    page.wait_for_selector("#compare-charts canvas")
    assert page.inner_text("#differences").count("epochs") >= 1
    assert int(page.get_attribute("#compare-charts canvas[data-metric='val/loss']", "data-points")) >= 2
    shots.take("compare")
    page.goto(f"{base}/runs/{first.name}")
    frame = page.frame_locator("iframe.report")
    assert "first-test" in page.inner_text("#evaluations")
    frame.locator("body").wait_for()
    assert "accuracy" in frame.locator("body").inner_text().lower()
    page.click("#evaluations a")
    assert page.url.endswith("/report.html")
    shots.take("report", full_page=False)  # the first screen of a long page


def check_review(page, shots: Shots, review: Path) -> None:
    base = page.url.split("/files")[0]
    page.goto(f"{base}/review/{review.name}")
    assert HOSTILE in page.inner_text("body")  # the class name is text on the page ...
    assert page.locator("img[src=x]").count() == 0  # ... never an element
    shots.take("review")
    header, *rows = read_csv(review / "decisions.csv")
    issue = next(row for row in rows if row[header.index("kind")] == "label_issue")
    finding = issue[header.index("finding")]
    page.goto(f"{base}/review/{review.name}#finding-{finding}")  # that finding is the current one
    with page.expect_navigation():
        page.keyboard.press("3")  # relabel as suggested
    header, *rows = read_csv(review / "decisions.csv")
    decided = {row[header.index("finding")]: row[header.index("action")] for row in rows}
    assert decided[finding] == f"relabel:{issue[header.index('suggested_label')]}"

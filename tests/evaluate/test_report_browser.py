"""report.html opens from disk in a real browser, with every image loaded, and every PR curve
can be seen on a screenshot.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped, saying so, where it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.results import Predictions, write_predictions
from evaluate.evaluation import EvaluateOptions, evaluate, rescore
from evaluate.plots import class_colour

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--virtual-time-budget=10000"]
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", ok + "/" + images.length);
});
</script></body>"""


@pytest.mark.slow
@pytest.mark.parametrize("page", ["report.html", "bad_cases.html"])
def test_pages_load_with_all_their_images(make_model, digits_root, tmp_path, page):
    if CHROMIUM is None:
        if os.environ.get("IMAGEPIPE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (IMAGEPIPE_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    folder = evaluate(EvaluateOptions(model=make_model(), list=digits_root / "lists" / "test.txt",
                                      progress=False)).folder
    probe = folder / f"probe-{page}"
    probe.write_text((folder / page).read_text().replace("</body>", PROBE))
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert found, f"the page did not finish loading: {result.stderr[-2000:]}"
    loaded, total = map(int, found.groups())
    assert total >= 5 and loaded == total


ONLY_PR_CURVES = """<style>
body * { visibility: hidden; }
#pr-curves { visibility: visible; position: absolute; left: 0; top: 0; margin: 0; border: 0; }
</style></head>"""


def overlapping_predictions(folder: Path) -> Path:
    """predictions.csv where classes 0-5 are perfect (their PR curves coincide at AP 1) and 6-9 are not."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    probabilities = np.full((200, 10), 0.01)
    probabilities[np.arange(200), labels] = 0.91
    noisy = labels >= 6
    probabilities[noisy, 6:] = rng.dirichlet(np.ones(4), noisy.sum()) * 0.96  # classes 6-9 confused among themselves
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    path = folder / "predictions.csv"
    write_predictions(path, Predictions([f"raw/{i}.png" for i in range(200)], labels,
                                        probabilities.astype(np.float32), [f"c{i}" for i in range(10)]))
    return path


@pytest.mark.slow
def test_every_pr_curve_is_visible_in_the_report_even_where_curves_coincide(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("IMAGEPIPE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (IMAGEPIPE_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    folder = tmp_path / "eval"
    folder.mkdir()
    metrics = rescore(overlapping_predictions(folder)).metrics
    assert [row["ap"] for row in metrics["per_class"][:6]] == [1.0] * 6 and metrics["per_class"][9]["ap"] < 1
    probe = folder / "probe-pr.html"
    probe.write_text((folder / "report.html").read_text().replace("</head>", ONLY_PR_CURVES))
    shot = tmp_path / "screenshot.png"
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                             "--window-size=1400,1400", f"--screenshot={shot}", probe.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot: {result.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int64)
    seen = []
    for index in range(10):
        colour = np.array([round(255 * v) for v in class_colour(index, 10)])
        seen.append(int((np.abs(pixels - colour).sum(axis=2) <= 12).sum()))  # pixels drawn in the class's colour
    assert min(seen) >= 100 and min(seen) >= 0.3 * np.median(seen), f"pixels per class colour: {seen}"

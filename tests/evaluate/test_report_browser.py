"""report.html opens from disk in a real browser, with every image loaded.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped, saying so, where it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from evaluate.evaluation import EvaluateOptions, evaluate

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

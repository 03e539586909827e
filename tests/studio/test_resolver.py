"""Files are served only from the data, model and output roots through one resolver; every way out is refused."""

from __future__ import annotations

import os

import pytest

from common.paths import data_dir, output_dir
from studio.resolver import Refused, resolve, url_for_file


@pytest.fixture
def roots(tmp_path):
    (output_dir() / "train" / "run").mkdir(parents=True)
    (output_dir() / "train" / "run" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (output_dir() / "notes.py").write_text("print(1)")
    data_dir().mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    os.symlink(secret, output_dir() / "leak.png")
    os.symlink(tmp_path, output_dir() / "outside")
    return secret


def test_a_file_inside_a_root_is_served(roots):
    assert resolve("output", "train/run/curves.png") == (output_dir() / "train/run/curves.png").resolve()
    assert url_for_file(output_dir() / "train/run/curves.png") == "/files/output/train/run/curves.png"
    assert url_for_file(roots) is None


@pytest.mark.parametrize("root, path, raw, why", [
    ("output", "../secret.png", b"", "'..'"),
    ("output", "train/../../secret.png", b"", "'..'"),
    ("output", "/etc/passwd", b"", "absolute"),
    ("output", "leak.png", b"", "out of its root"),
    ("output", "outside/secret.png", b"", "out of its root"),
    ("output", "train/run/curves.png", b"/files/output/train%2Frun/curves.png", "encoded"),
    ("output", "train/run/curves.png", b"/files/output/train%5crun/curves.png", "encoded"),
    ("output", "train/run/curves.png\x00.txt", b"", "control character"),
    ("output", "train\\run\\curves.png", b"", "backslash"),
    ("home", "x.png", b"", "unknown root"),
    ("output", "notes.py", b"", "not served"),
    ("output", "train/run/missing.png", b"", "no such file"),
    ("output", "", b"", "empty"),
])
def test_every_way_out_is_refused(roots, root, path, raw, why):
    with pytest.raises(Refused, match=why):
        resolve(root, path, raw)


@pytest.mark.parametrize("url", ["/files/output/..%2Fsecret.png", "/files/output/train%2Frun%2Fcurves.png",
                                 "/files/output/leak.png", "/files/output/outside/secret.png",
                                 "/files/output/%2e%2e/secret.png", "/files/output/train/run/curves.png%00",
                                 "/files/etc/passwd", "/files/output//etc/passwd"])
def test_the_http_route_refuses_them_too(roots, signed, url):
    response = signed.client.get(url)
    assert response.status_code == 404 and response.text.startswith("refused")
    assert b"secret" not in response.content


def test_served_files_are_sandboxed(roots, signed):
    (output_dir() / "report.html").write_text("<script>alert(1)</script>")
    response = signed.client.get("/files/output/report.html")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox") and "script-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert signed.client.get("/files/output/train/run/curves.png").headers["content-type"] == "image/png"

"""``pipenv run studio`` as a process: the printed URL, one studio per output folder, a port in use, and a
studio killed mid-run whose job runs on and is found by the next studio."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from common.errors import UserError
from common.locks import exclusive
from common.paths import PROJECT_ROOT, output_dir
from studio.server import StudioOptions, bind, serve
from tests.studio.conftest import TOKEN
from tests.studio.test_runs_live import wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            bind("127.0.0.1", port)


def test_a_second_studio_on_the_same_output_is_refused():
    folder = output_dir() / "studio"
    folder.mkdir(parents=True)
    with exclusive(folder / ".lock", "the first studio"):
        with pytest.raises(UserError, match="in use by pid"):
            serve(StudioOptions(port=free_port()))


def start_studio(port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "IMAGEPIPE_STUDIO_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "studio", "--port", str(port)], cwd=PROJECT_ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def signed_client(port: int, log: Path) -> httpx.Client:
    url = wait_for(lambda: re.search(r"http://\S+/\?token=\S+", log.read_text()), 60, "the printed URL").group(0)
    assert url == f"http://127.0.0.1:{port}/?token={TOKEN}"
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    assert client.get(f"/queue?token={TOKEN}", follow_redirects=False).status_code == 303
    return client


@pytest.mark.slow
def test_a_killed_studio_loses_no_job_and_orphans_no_run(tmp_path):
    port = free_port()
    first = start_studio(port, tmp_path / "first.log")
    try:
        client = signed_client(port, tmp_path / "first.log")
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/launch").text).group(1)
        origin = {"origin": f"http://127.0.0.1:{port}"}
        for name, epochs in (("survivor", "300"), ("waiting", "1")):
            response = client.post("/launch", data={"csrf": csrf, "name": name, "dev": "on", "epochs": epochs},
                                   headers=origin)
            assert response.status_code == 303, response.text
        assert "survivor" in client.get("/queue").text
        wait_for(lambda: list((output_dir() / "train").glob("survivor-*/metrics.csv")), what="a first epoch")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    run_dir = next((output_dir() / "train").glob("survivor-*"))
    manifest = (run_dir / "manifest.json").read_text()
    pid = int(re.search(r'"pid": (\d+)', manifest).group(1))
    os.kill(pid, 0)  # the run goes on without the studio
    second = start_studio(port, tmp_path / "second.log")
    try:
        client = signed_client(port, tmp_path / "second.log")
        queue = client.get("/queue").text
        assert re.search(r'data-job="1" data-state="running"', queue) and 'data-job="2" data-state="queued"' in queue
        csrf = re.search(r'name="csrf" value="([^"]+)"', queue).group(1)
        client.post("/jobs/1/cancel", data={"csrf": csrf}, headers={"origin": f"http://127.0.0.1:{port}"})
        wait_for(lambda: 'data-job="2" data-state="ended"' in client.get("/queue").text, what="the queued job to run")
        assert "run preempted" in client.get("/queue").text
        assert TOKEN not in (output_dir() / "studio" / "studio.log").read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert second.returncode == 0

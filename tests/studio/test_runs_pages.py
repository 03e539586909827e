"""The runs table (filter, sort, escaped names), a run's page, the comparison, clone, and a run's events
(reconnecting with Last-Event-ID loses nothing), on run folders written without training."""

from __future__ import annotations

import json
import re

import pytest

from common.run_folder import RunStatus
from studio.render import json_script
from studio.runs import Cursor, RunTable, live_update
from tests.studio.fake_runs import fake_run

HOSTILE = "<img src=x onerror=alert(1)>"


def names_in(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)"', html)


def test_the_table_filters_and_sorts(signed):
    fake_run("alpha", lr=0.1, started="2026-12-01T10:00:00+00:00")
    fake_run("beta", RunStatus.PREEMPTED, dataset="flowers", lr=0.01, started="2026-12-02T10:00:00+00:00")
    fake_run("gamma", lr=0.001, started="2026-12-03T10:00:00+00:00")
    client = signed.client
    assert [n.split("-")[0] for n in names_in(client.get("/runs").text)] == ["gamma", "beta", "alpha"]
    assert [n.split("-")[0] for n in names_in(client.get("/runs?sort=best&order=asc").text)] == \
        ["gamma", "beta", "alpha"]  # lower val/loss first
    assert [n.split("-")[0] for n in names_in(client.get("/runs?q=flowers").text)] == ["beta"]
    assert [n.split("-")[0] for n in names_in(client.get("/runs?status=preempted").text)] == ["beta"]
    assert [n.split("-")[0] for n in names_in(client.get("/runs?sort=name&order=asc").text)] == \
        ["alpha", "beta", "gamma"]


def test_names_from_files_are_escaped(signed):
    fake_run("hostile", dataset=HOSTILE, network=HOSTILE)
    html = signed.client.get("/runs").text
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    page = signed.client.get("/runs/hostile-20261201-100000").text
    assert HOSTILE not in page


def test_a_json_block_cannot_be_closed_by_a_value():
    text = json_script({"name": "</script><script>alert(1)</script>", "x": "a & b"})
    assert "</script>" not in text and "<" not in text and ">" not in text and "&" not in text.replace("\\u0026", "")
    assert json.loads(str(text)) == {"name": "</script><script>alert(1)</script>", "x": "a & b"}


def test_a_preempted_run_has_a_continue_button_and_a_finished_one_has_not(signed):
    fake_run("done")
    fake_run("stopped", RunStatus.PREEMPTED)
    assert 'id="continue"' not in signed.client.get("/runs/done-20261201-100000").text
    assert 'id="continue"' in signed.client.get("/runs/stopped-20261201-100000").text
    response = signed.post("/runs/done-20261201-100000/continue")
    assert response.status_code == 400 and "only an interrupted run" in response.text


@pytest.mark.parametrize("name", ["%2E%2E", "x%2F..%2F..", "nope"])
def test_an_unknown_or_path_like_run_name_is_not_found(signed, name):
    response = signed.client.get(f"/runs/{name}")
    assert response.status_code in (400, 404)


def test_compare_shows_config_differences_and_every_run_s_curves(signed):
    fake_run("low", lr=0.001)
    fake_run("high", lr=0.1, epochs=4)
    page = signed.client.get("/compare?run=low-20261201-100000&run=high-20261201-100000").text
    rows = dict(re.findall(r"<tr><td>([\w.]+)</td>(.*?)</tr>", page))
    assert set(rows) == {"optim.lr", "epochs"}
    assert "0.001" in rows["optim.lr"] and "0.1" in rows["optim.lr"]
    curves = json.loads(re.search(r'id="compare-data">(.*?)</script>', page).group(1))
    assert len(curves["high-20261201-100000"]["metrics"]) == 4 and len(curves["low-20261201-100000"]["metrics"]) == 3
    assert signed.client.get("/compare?run=low-20261201-100000").status_code == 400


def test_clone_fills_the_form_from_the_run(signed):
    fake_run("base", lr=0.003)
    page = signed.client.get("/runs/base-20261201-100000/clone").text
    assert 'value="base-again"' in page and 'value="0.003"' in page


def test_events_resume_where_the_page_left_off(tmp_path):
    run = fake_run("live", RunStatus.RUNNING)
    first, cursor = live_update(run, Cursor())
    assert len(first["steps"]) == 6 and len(first["metrics"]) == 3 and first["reset"]
    again, same = live_update(run, cursor)
    assert again["steps"] == [] and again["metrics"] == [] and same == cursor
    with open(run.steps_path, "a") as steps:
        steps.write("31,3.1,0.9,0.001,1.0,500.0\n")
    more, after = live_update(run, cursor)
    assert [row["step"] for row in more["steps"]] == [31] and after.text() == "7.3"
    assert Cursor.parse("7.3") == after and Cursor.parse("garbage") == Cursor() and Cursor.parse("-1.-5") == Cursor()


def test_the_table_reads_a_run_again_only_when_its_manifest_changed(tmp_path):
    run = fake_run("cached")
    table = RunTable()
    assert table.rows()[0].status == "finished"
    manifest = run.read_manifest()
    manifest.status = RunStatus.PREEMPTED
    run.write_manifest(manifest)
    assert table.rows()[0].status == "preempted"


def test_tensorboard_starts_once_for_a_run_on_request(signed):
    run = fake_run("boarded")
    assert "Start TensorBoard" not in signed.client.get(f"/runs/{run.name}").text  # no tensorboard/ folder
    assert signed.post(f"/runs/{run.name}/tensorboard").status_code == 400
    run.tensorboard_dir.mkdir()
    assert signed.post(f"/runs/{run.name}/tensorboard").status_code == 303
    boards = signed.studio.tensorboards
    try:
        process, port = boards[run.name]
        assert process.poll() is None and "--logdir" in process.args and str(run.tensorboard_dir) in process.args
        assert process.args[process.args.index("--host") + 1] == "127.0.0.1"
        signed.post(f"/runs/{run.name}/tensorboard")
        assert boards[run.name][0] is process  # once
        assert f'href="http://127.0.0.1:{port}/"' in signed.client.get(f"/runs/{run.name}").text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_interrupted_run_can_be_continued_from_the_table(signed):
    fake_run("finished")
    stopped = fake_run("interrupted", RunStatus.PREEMPTED)
    html = signed.client.get("/runs").text
    assert html.count('class="continue"') == 1 and f'formaction="/runs/{stopped.name}/continue"' in html
    assert signed.post(f"/runs/{stopped.name}/continue").headers["location"] == "/queue"
    job = signed.studio.store.all()[0]
    assert job.kind == "continue" and job.arguments == ["--resume", str(stopped.path), "--no-progress"]
    assert signed.post(f"/runs/{stopped.name}/continue").status_code == 400  # one job per run

"""Pages of runs: the table, one run (live), a comparison, and the actions on a run (continue, TensorBoard)."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import subprocess
import sys

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from common.errors import UserError
from common.paths import PROJECT_ROOT
from common.run_folder import RunStatus
from studio import runs as runs_view
from studio.launch import form_from_run
from studio.render import page
from studio.resolver import url_for_file
from studio.security import child_environment, state_changing

EVENT_SECONDS = 1.0
"""How often a watched run's files are looked at for its page."""
KEEPALIVE_SECONDS = 15.0
MAX_COMPARED = 8



async def runs_table(request: Request) -> Response:
    """GET /runs: every run, filtered (``q``, ``status``) and sorted (``sort``, ``order``)."""
    studio = request.app.state.studio
    q = request.query_params
    rows = runs_view.select(studio.table.rows(), q.get("q", ""), q.get("status", ""), q.get("sort", "started"),
                            q.get("order", "desc") != "asc")
    return page(request, "runs.html", rows=rows, q=q.get("q", ""), status=q.get("status", ""),
                sort=q.get("sort", "started"), order=q.get("order", "desc"), statuses=[s.value for s in RunStatus])


async def run_page(request: Request) -> Response:
    """GET /runs/<name>: the run, watched live."""
    folder = runs_view.find_run_folder(request.path_params["name"])
    manifest = folder.read_manifest()
    studio = request.app.state.studio
    board = studio.tensorboards.get(folder.name)
    board_url = None
    if board is not None and board[0].poll() is None:
        host = studio.tensorboard_host if studio.tensorboard_host not in ("0.0.0.0", "::") else \
            request.url.hostname
        board_url = f"http://{host}:{board[1]}/"
    jobs = [job for job in studio.store.all() if job.run_dir and job.run_dir.endswith("/" + folder.name)]
    return page(request, "run.html", run=folder, manifest=manifest, row=runs_view.run_row(folder),
                config=runs_view.flat(folder.read_run_config().values), jobs=jobs,
                evaluations=[(p.name, url_for_file(p / "report.html")) for p in runs_view.evaluations_of(folder.name)],
                models=[(p.name, url_for_file(p)) for p in runs_view.models_of(folder.name)],
                trackers=runs_view.tracker_links(folder), tensorboard=board_url,
                has_tensorboard=folder.tensorboard_dir.is_dir(), figure_base=url_for_file(folder.path / "config.yaml"))


async def run_events(request: Request) -> Response:
    """GET /runs/<name>/events: server-sent events of the run's new points, status, ETA, figures and log.

    Each event's id says how many steps and epochs the page has; a browser that reconnects sends it back
    (``Last-Event-ID``) and gets only what it missed; a reload starts from the beginning.
    """
    folder = runs_view.find_run_folder(request.path_params["name"])
    cursor = runs_view.Cursor.parse(request.headers.get("last-event-id") or request.query_params.get("since"))
    streams = request.app.state.studio.streams
    if streams.locked():
        return PlainTextResponse("too many pages are watching runs; close one and reload", 503)

    async def stream():  # type: ignore[no-untyped-def]
        nonlocal cursor
        quiet = 0.0
        last_sent = ""
        yield "retry: 2000\n\n"
        async with streams:
            while True:
                if await request.is_disconnected():
                    return
                try:
                    update, cursor = await asyncio.to_thread(runs_view.live_update, folder, cursor)
                except (UserError, OSError, ValueError) as exc:  # e.g. the run folder was deleted meanwhile
                    yield f"event: end\ndata: {json.dumps({'problem': str(exc)})}\n\n"
                    return
                text = json.dumps(update, allow_nan=False, default=str)
                changed = text != last_sent
                if changed or quiet >= KEEPALIVE_SECONDS:
                    yield f"id: {cursor.text()}\ndata: {text}\n\n" if changed else ": keep-alive\n\n"
                    last_sent, quiet = text, 0.0
                if update["status"] != RunStatus.RUNNING and not update["steps"]:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(EVENT_SECONDS)
                quiet += EVENT_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})


async def compare(request: Request) -> Response:
    """GET /compare?run=A&run=B...: config differences and overlaid curves of two or more runs."""
    names = list(dict.fromkeys(request.query_params.getlist("run")))[:MAX_COMPARED]
    if len(names) < 2:
        raise UserError("choose two or more runs to compare (tick them in the runs table)")
    folders = [runs_view.find_run_folder(name) for name in names]
    return page(request, "compare.html", names=names, differences=runs_view.config_differences(folders),
                curves={f.name: runs_view.curves(f) for f in folders})


async def continue_run(request: Request) -> Response:
    """POST /runs/<name>/continue: queue ``train --resume <run>`` for an interrupted run."""
    studio = request.app.state.studio
    folder = runs_view.find_run_folder(request.path_params["name"])
    status = folder.status()
    if not status.resumable:
        raise UserError(f"run {folder.name} is {status}; only an interrupted run can be continued")
    await asyncio.to_thread(studio.scheduler.tick)  # a job whose process just ended is recorded ended first
    active = [job for job in studio.store.in_state("queued", "running", "cancelling")
              if job.run_dir and job.run_dir.endswith("/" + folder.name)]
    if active:
        raise UserError(f"run {folder.name} already has job {active[0].id} ({active[0].state})")
    arguments = continue_arguments(studio, folder)
    job = studio.store.add(folder.name, arguments, kind="continue", executor=studio.scheduler.executor.name,
                           extra={"command": shlex.join(["pipenv", "run", "train", *arguments,
                                                         *studio.scheduler.executor.extra_arguments()])})
    studio.store.update(job.id, run_dir=str(folder.path))
    return RedirectResponse("/queue", 303)


def continue_arguments(studio, folder) -> list[str]:  # type: ignore[no-untyped-def]
    """``--resume <run>`` locally; under Slurm the run's own submission again (``--auto-resume`` by its name).

    Raises:
        UserError: Under Slurm, for a run the studio did not start.
    """
    if studio.scheduler.executor.name == "local":
        return ["--resume", str(folder.path), "--no-progress"]
    started = [job for job in studio.store.all() if job.kind == "start" and job.run_dir == str(folder.path)]
    if not started:
        raise UserError(f"run {folder.name} was not started by this studio; continue it with its own "
                        "`pipenv run train --name ... --submit slurm` command (it resumes by name)")
    return started[0].arguments


async def clone_run(request: Request) -> Response:
    """GET /runs/<name>/clone: the launch form filled from the run (run again with changes)."""
    from studio.pages.jobs import launch_form
    folder = runs_view.find_run_folder(request.path_params["name"])
    return await launch_form(request, form_from_run(folder.path))


def free_port() -> int:
    """A free TCP port on this machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_tensorboard(request: Request) -> Response:
    """POST /runs/<name>/tensorboard: start TensorBoard on the run's ``tensorboard/`` (once)."""
    studio = request.app.state.studio
    folder = runs_view.find_run_folder(request.path_params["name"])
    if not folder.tensorboard_dir.is_dir():
        raise UserError(f"run {folder.name} has no tensorboard/ folder (log.trackers without tensorboard)")
    running = studio.tensorboards.get(folder.name)
    if running is None or running[0].poll() is not None:
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(folder.tensorboard_dir),
                                    "--host", studio.tensorboard_host, "--port", str(port)], cwd=PROJECT_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   env=child_environment())
        studio.tensorboards[folder.name] = (process, port)
    return RedirectResponse(f"/runs/{folder.name}", 303)


def routes() -> list[Route]:
    """The routes of this module."""
    return [
        Route("/runs", runs_table),
        Route("/runs/{name}", run_page),
        Route("/runs/{name}/events", run_events),
        Route("/runs/{name}/clone", clone_run),
        Route("/runs/{name}/continue", state_changing(continue_run), methods=["POST"]),
        Route("/runs/{name}/tensorboard", state_changing(start_tensorboard), methods=["POST"]),
        Route("/compare", compare),
    ]

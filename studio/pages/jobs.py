"""Pages of the queue: the launch form (GET shows it, POST validates and queues) and the queue with cancel."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from common.errors import UserError
from studio import launch
from studio.render import page
from studio.security import state_changing


async def launch_form(request: Request, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                      command: str = "", status_code: int = 200) -> Response:
    """GET /launch: the form, empty, cloned from a run, or with the problems of a submission."""
    values = values or {"recipe": "default.yaml", "trackers": ["tensorboard"]}
    recipe = str(values.get("recipe") or "default.yaml")
    return page(request, "launch.html", status_code, fields=launch.FIELDS, choices=launch.choices(), values=values,
                errors=errors or {}, command=command, defaults=launch.recipe_defaults(recipe))


async def submit_launch(request: Request) -> Response:
    """POST /launch: check the form with training's validator; queue the job, or show the form with the problems."""
    studio = request.app.state.studio
    form = await request.form()
    submitted: dict[str, Any] = {name: form.get(name) for name in form.keys()}
    submitted["trackers"] = form.getlist("trackers") if "trackers_shown" in form else None
    checked = launch.command_from_form(submitted, studio.store.names_in_use())
    if not checked.errors:
        checked = await asyncio.to_thread(launch.validate, checked)
    if not checked.errors and str(checked.values["name"]) in studio.store.names_in_use():
        checked.errors["name"] = "a job of this name was queued meanwhile (a second click?); choose another name"
    if checked.errors:
        return await launch_form(request, checked.values, checked.errors, checked.command, 400)
    executor = studio.scheduler.executor
    command = shlex.join(shlex.split(checked.command) + executor.extra_arguments())
    studio.store.add(str(checked.values["name"]), checked.arguments, executor=executor.name,
                     extra={"command": command})
    return RedirectResponse("/queue", 303)


async def queue(request: Request) -> Response:
    """GET /queue: every job, newest first."""
    studio = request.app.state.studio
    jobs = studio.store.all()
    run_names = {job.id: job.run_dir.rsplit("/", 1)[-1] for job in jobs if job.run_dir}
    return page(request, "queue.html", jobs=jobs, run_names=run_names, slots=studio.scheduler.slots,
                executor=studio.scheduler.executor.name)


async def cancel_job(request: Request) -> Response:
    """POST /jobs/<id>/cancel: remove a queued job, or stop a running one (SIGTERM: checkpoint, preempted)."""
    studio = request.app.state.studio
    text = request.path_params["job"]
    if not text.isdigit() or len(text) > 12:
        raise UserError(f"no job {text[:20]!r}")
    await asyncio.to_thread(studio.scheduler.cancel, int(text))  # the scheduler may be busy with squeue
    return RedirectResponse("/queue", 303)


def routes() -> list[Route]:
    """The routes of this module."""
    return [
        Route("/launch", launch_form, methods=["GET"]),
        Route("/launch", state_changing(submit_launch), methods=["POST"]),
        Route("/queue", queue),
        Route("/jobs/{job}/cancel", state_changing(cancel_job), methods=["POST"]),
    ]

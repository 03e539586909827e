"""The studio's web application: :func:`build_app` puts the pages, the guard and the scheduler together.

Pages are rendered on the server from ``studio/templates`` (Jinja2, every value escaped);
``studio/static`` holds the one script and style sheet (nothing is loaded from elsewhere).
Every route that changes something is wrapped by :func:`studio.security.state_changing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from common.errors import UserError
from studio import runs as runs_view
from studio.executors import Scheduler
from studio.jobs import JobStore
from studio.pages import jobs as jobs_pages
from studio.pages import predicting as predict_pages
from studio.pages import review as review_pages
from studio.pages import runs as runs_pages
from studio.render import page
from studio.resolver import Refused, file_response, resolve
from studio.security import (COOKIE, PAGE_HEADERS, Guard, client_of, log_safe_path, origin_matches,
                             query_without_token, state_changing)

HERE = Path(__file__).resolve().parent
LOG = logging.getLogger("studio")
MAX_BODY = 256 * 1024 * 1024
"""Largest request body of a signed-in client (uploads included); larger ones are refused before they are read."""
MAX_ANONYMOUS_BODY = 8 * 1024
"""Largest request body before signing in (the sign-in form holds one token)."""
FORM_LIMITS = {"max_files": 64, "max_fields": 200, "max_part_size": 1024 * 1024}
"""Limits of one submitted form: files, fields, bytes of one text field (uploads are checked by size where read)."""
LOGIN_LIMITS = {"max_files": 0, "max_fields": 2, "max_part_size": 1024}
MAX_STREAMS = 64
"""Pages that may watch runs at once (each reads its run's files every second); more get 503."""


@dataclass
class Studio:
    """What the pages share.

    Attributes:
        guard: The access checks.
        store: The queue.
        scheduler: Starts and follows jobs.
        table: The runs table's cache.
        tensorboard_host: Where TensorBoard processes started from a run page listen.
        tensorboards: ``run name -> (process, port)`` of those processes.
        streams: Watching pages at once (:data:`MAX_STREAMS`).
    """

    guard: Guard
    store: JobStore
    scheduler: Scheduler
    table: runs_view.RunTable = field(default_factory=runs_view.RunTable)
    tensorboard_host: str = "127.0.0.1"
    tensorboards: dict[str, Any] = field(default_factory=dict)
    streams: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_STREAMS))


class GuardMiddleware:
    """Every request: Host check, token login, session check, body size limit, page headers, a log line without
    the token."""

    def __init__(self, app: Any, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        LOG.info("%s %s", scope.get("method"), log_safe_path(scope))
        response = self.check(request)
        if response is not None:
            await _with_headers(response)(scope, receive, send)
            return
        limit = MAX_BODY if scope["state"].get("session") else MAX_ANONYMOUS_BODY
        await self.app(scope, _limited(receive, limit), _adding_headers(send))

    def check(self, request: Request) -> Response | None:
        """A response that ends the request here (refused, or a login), else None."""
        if not self.guard.host_allowed(request.headers.get("host", "")):
            return PlainTextResponse("refused: this Host is not a name of the studio (DNS rebinding?); "
                                     "start it with --allowed-host NAME to allow one", 400)
        request.scope.setdefault("state", {})
        sid = self.guard.session(request)
        limit = MAX_BODY if sid else MAX_ANONYMOUS_BODY
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return PlainTextResponse(f"refused: a request body larger than {limit:,} bytes"
                                     + ("" if sid else " before signing in"), 413)
        if self.guard.token is None and sid is None:
            return self.login_to(request, query_without_token(request))
        if "token" in request.query_params and self.guard.token is not None:
            return self.token_login(request)
        request.scope["state"]["session"] = sid
        if sid is None and not request.url.path.startswith(("/static/", "/login")):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", 303)
            return PlainTextResponse("sign in first: open the URL the studio printed (with its token)", 401)
        return None

    def token_login(self, request: Request) -> Response:
        """``?token=``: a valid token gets a session cookie and the same page without it; a wrong one counts."""
        client = client_of(request)
        wait = self.guard.throttle.wait(client)
        if wait > 0:
            return PlainTextResponse(f"too many wrong tokens; try again in {wait:.0f} s", 429,
                                     headers={"retry-after": str(int(wait) + 1)})
        if not self.guard.token_matches(request.query_params["token"]):
            self.guard.throttle.failed(client)
            return PlainTextResponse("wrong token: open the URL the studio printed", 403)
        return self.login_to(request, query_without_token(request))

    def login_to(self, request: Request, where: str) -> Response:
        response = RedirectResponse(where if where.startswith("/") and not where.startswith("//") else "/", 303)
        response.headers["set-cookie"] = self.guard.cookie_header(self.guard.new_session())
        return response


def _with_headers(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _adding_headers(send: Callable) -> Callable:
    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(k.encode(), v.encode()) for k, v in PAGE_HEADERS.items() if k.encode() not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)
    return sending


def _limited(receive: Callable, limit: int) -> Callable:
    """``receive`` that stops a body (sent without a length, or longer than it said) once it passes ``limit``."""
    seen = 0

    async def receiving() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UserError(f"request body larger than {limit:,} bytes")
        return message
    return receiving


async def login_page(request: Request) -> Response:
    """The sign-in form (for a token typed by hand)."""
    return page(request, "login.html", error="")


async def login(request: Request) -> Response:
    """POST /login: the token from the form."""
    studio: Studio = request.app.state.studio
    if not origin_matches(request):
        return PlainTextResponse("refused: this request did not come from the studio's own page (Origin)", 403)
    form = await request.form(**LOGIN_LIMITS)
    guard = studio.guard
    client = client_of(request)
    wait = guard.throttle.wait(client)
    if wait > 0:
        return page(request, "login.html", 429, error=f"Too many wrong tokens; try again in {wait:.0f} s.")
    if not guard.token_matches(str(form.get("token", ""))):
        guard.throttle.failed(client)
        return page(request, "login.html", 403, error="Wrong token.")
    response = RedirectResponse("/", 303)
    response.headers["set-cookie"] = guard.cookie_header(guard.new_session())
    return response


async def logout(request: Request) -> Response:
    """POST /logout: forget the session cookie."""
    response = RedirectResponse("/login", 303)
    response.headers["set-cookie"] = f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
    return response


async def serve_file(request: Request) -> Response:
    """GET /files/<root>/<path>: a file from the data, model or output root (:func:`studio.resolver.resolve`)."""
    try:
        path = resolve(request.path_params["root"], request.path_params["path"], request.scope.get("raw_path", b""))
    except Refused as exc:
        return PlainTextResponse(f"refused: {exc}", 404)
    return file_response(path)


async def handle_user_error(request: Request, exc: Exception) -> Response:
    """A user mistake that reached a route: its message, never a traceback."""
    return page(request, "error.html", 400, message=str(exc))


def build_app(studio: Studio) -> Starlette:
    """The studio's ASGI application (the scheduler is started and stopped with it)."""
    routes = [
        Route("/", lambda request: RedirectResponse("/runs", 303)),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", state_changing(logout), methods=["POST"]),
        Route("/files/{root}/{path:path}", serve_file),
        *runs_pages.routes(), *jobs_pages.routes(), *review_pages.routes(), *predict_pages.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        studio.scheduler.start()
        try:
            yield
        finally:
            studio.scheduler.stop()
            for process, _ in studio.tensorboards.values():
                process.terminate()
            await asyncio.sleep(0)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={UserError: handle_user_error})
    app.state.studio = studio
    app.state.guard = studio.guard
    app.state.form_limits = FORM_LIMITS
    app.add_middleware(GuardMiddleware, guard=studio.guard)
    return app

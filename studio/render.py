"""Pages from templates: :func:`page` renders ``studio/templates/<name>`` with every value escaped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

HERE = Path(__file__).resolve().parent


def templates() -> Environment:
    """The page templates; every value is escaped unless marked safe."""
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters["json_script"] = json_script
    environment.filters["number"] = lambda value, digits=4: "" if value is None else f"{value:.{digits}g}"
    return environment


def json_script(data: Any) -> Markup:
    """Data for a ``<script type="application/json">`` block: JSON with ``<``, ``>`` and ``&`` escaped, so no
    value can close the block."""
    text = json.dumps(data, allow_nan=False, default=str)
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


ENVIRONMENT = templates()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the session's CSRF token and the page headers."""
    studio = request.app.state.studio
    sid = request.state.session
    html = ENVIRONMENT.get_template(template).render(
        request=request, csrf=studio.guard.csrf_token(sid) if sid else "", path=request.url.path, **context)
    return HTMLResponse(html, status_code)

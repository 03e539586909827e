"""Who may use the studio, and how each request is checked.

- **The token** (:class:`Guard`): printed once in the URL, as Jupyter does. ``/?token=...``
  (or the login form) exchanges it for an HttpOnly, SameSite=Strict session cookie and
  redirects to the same page without it, so it stays out of the browser's history. The
  comparison is :func:`hmac.compare_digest` (constant time), and a client that guesses
  wrong :data:`FREE_GUESSES` times within :data:`GUESS_WINDOW` seconds waits before its
  next guess is even looked at (:class:`Throttle`).
- **The cookie** is ``<session id>.<HMAC of it>`` keyed by the token, so no session is kept
  server-side: restarting the studio with the same token keeps every browser signed in, and
  a new token signs everyone out.
- **CSRF**: each session has a CSRF token (an HMAC of its id); every state-changing request
  carries it in the form field ``csrf`` or the header ``X-CSRF-Token`` (:func:`state_changing`),
  and its ``Origin`` must be the page's own.
- **Host**: a request whose ``Host`` is not a name of this studio (``localhost``, the machine's
  names, ``--allowed-host``) or an IP address is refused: a page on another site that rebinds its
  DNS name to this machine cannot reach the studio (DNS rebinding).
- **Headers**: every response forbids framing by other sites, sniffing and inline scripts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

COOKIE = "imagepipe_studio"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
FREE_GUESSES = 5
"""Wrong tokens a client may try within :data:`GUESS_WINDOW` before it must wait."""
GUESS_WINDOW = 60.0
MAX_WAIT = 300.0
"""Longest wait after repeated wrong tokens (seconds)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_VARIABLE = "IMAGEPIPE_STUDIO_TOKEN"
"""Where a fixed token comes from (else a fresh one is made); never passed on to the processes the studio starts."""

PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
"""Headers of every studio page (files served from the roots get their own, :mod:`studio.resolver`)."""


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass
class Throttle:
    """Slows down repeated wrong tokens from one client.

    Attributes:
        failures: ``client -> times of its recent wrong guesses``.
    """

    failures: dict[str, list[float]] = field(default_factory=dict)

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` must still wait before its next guess is looked at (0: none)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self.failures.get(client, []) if now - t < MAX_WAIT]
        self.failures[client] = recent
        in_window = [t for t in recent if now - t < GUESS_WINDOW]
        if len(in_window) < FREE_GUESSES:
            return 0.0
        wait = min(MAX_WAIT, 2.0 ** (len(recent) - FREE_GUESSES + 1))
        return max(0.0, recent[-1] + wait - now)

    def failed(self, client: str, now: float | None = None) -> None:
        """Record a wrong guess of ``client``."""
        self.failures.setdefault(client, []).append(time.monotonic() if now is None else now)


@dataclass
class Guard:
    """The studio's checks: token, session cookie, CSRF, Host and Origin.

    Args:
        token: The access token; None only when serving on a loopback address with ``--no-token``.
        allowed_hosts: Host names (lower case, no port) requests may name besides IP addresses.
        secure_cookie: Mark the cookie ``Secure`` (behind an HTTPS proxy).
    """

    token: str | None
    allowed_hosts: frozenset[str]
    secure_cookie: bool = False
    throttle: Throttle = field(default_factory=Throttle)
    _key: bytes = b""

    def __post_init__(self) -> None:
        self._key = hashlib.sha256(b"imagepipe-studio:" + (self.token or secrets.token_hex(32)).encode()).digest()

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token (constant-time comparison)."""
        return self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def new_session(self) -> str:
        """A new signed session cookie value."""
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{self._mac('session:' + sid)}"

    def session(self, request: Request) -> str | None:
        """The request's session id when its cookie is valid, else None."""
        value = request.cookies.get(COOKIE, "")
        sid, _, mac = value.partition(".")
        if sid and mac and hmac.compare_digest(mac.encode(), self._mac("session:" + sid).encode()):
            return sid
        return None

    def csrf_token(self, sid: str) -> str:
        """The CSRF token of session ``sid``."""
        return self._mac("csrf:" + sid)

    def host_allowed(self, host_header: str) -> bool:
        """Whether a ``Host`` header names this studio: an IP address, or one of :attr:`allowed_hosts`."""
        name = host_name_of(host_header)
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True  # an address cannot be rebound to another site by DNS
        except ValueError:
            return name in self.allowed_hosts

    def cookie_header(self, value: str) -> str:
        """``Set-Cookie`` value for a session: HttpOnly, SameSite=Strict, whole site, Secure behind HTTPS."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE] = value
        morsel = cookie[COOKIE]
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        morsel["path"] = "/"
        if self.secure_cookie:
            morsel["secure"] = True
        return morsel.OutputString()


def host_name_of(host_header: str) -> str:
    """``example.org:8765`` -> ``example.org``; ``[::1]:8765`` -> ``::1``; lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_host_names(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a request's ``Host`` may use: loopback names, the machine's names when serving beyond it, ``extra``."""
    names = set(LOOPBACK_NAMES) | {name.lower() for name in extra}
    if bind_host not in LOOPBACK_NAMES and not bind_host.startswith("127."):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def origin_matches(request: Request) -> bool:
    """Whether the request's ``Origin`` (else its ``Referer``) is this page's own scheme-less host and port."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def client_of(request: Request) -> str:
    """The client's address (for slowing down guesses)."""
    return request.client.host if request.client else "?"


Handler = Callable[[Request], Awaitable[Response]]


def state_changing(handler: Handler) -> Handler:
    """Wrap a route that changes something: same-origin and a valid CSRF token, or 403.

    Every POST route of the studio is registered through this (a test checks it), so one
    place holds the rule.
    """
    async def checked(request: Request) -> Response:
        guard: Guard = request.app.state.guard
        sid = request.state.session
        if not origin_matches(request):
            return PlainTextResponse("refused: this request did not come from the studio's own page (Origin)", 403)
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form(**request.app.state.form_limits)
            sent = str(form.get(CSRF_FIELD, ""))
        if not sid or not sent or not hmac.compare_digest(sent.encode(), guard.csrf_token(sid).encode()):
            return PlainTextResponse("refused: missing or wrong CSRF token; reload the page and try again", 403)
        return await handler(request)
    checked.__name__ = handler.__name__
    checked.__doc__ = handler.__doc__
    checked.state_changing = True  # type: ignore[attr-defined]
    return checked


def query_without_token(request: Request) -> str:
    """The request's path and query with ``token`` removed (where a login redirects to)."""
    return log_safe_path(request.scope)


def redacted(text: str, token: str | None) -> str:
    """``text`` with the token replaced by ``<token>`` (what the studio logs)."""
    return text.replace(token, "<token>") if token else text


def log_safe_path(scope: dict[str, Any]) -> str:
    """A request's path and query without ``token``, however its name is encoded: what is logged, and where a
    login redirects to."""
    query = scope.get("query_string", b"").decode("latin-1")
    kept = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.strip() != "token"])
    return scope.get("path", "") + (f"?{kept}" if kept else "")


def child_environment() -> dict[str, str]:
    """This process's environment without the studio's token: what the processes it starts get."""
    return {key: value for key, value in os.environ.items() if key != TOKEN_VARIABLE}

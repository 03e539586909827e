"""The one way the studio serves a file: from a named root (data, model, output) and a path inside it.

:func:`resolve` refuses, before touching the disk beyond a ``stat``, every path that could
leave its root: ``..`` parts, absolute paths, backslashes, NUL and other control characters,
an encoded slash or backslash in the request (``%2F``, ``%5C``), and a symlink that points
out of the root (the resolved path must stay inside the resolved root). What it serves gets
headers that keep a file from acting as a page of the studio: HTML is sandboxed (no scripts,
no same-origin access), and nothing is sniffed into another type.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from starlette.responses import FileResponse

from common.paths import data_dir, model_dir, output_dir

SERVED_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".bmp": "image/bmp", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
                ".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8",
                ".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8",
                ".json": "application/json", ".yaml": "text/plain; charset=utf-8", ".onnx": "application/octet-stream",
                ".svg": "image/svg+xml"}
"""What may be served, by suffix, with its type (anything else is refused)."""

FILE_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin", "cache-control": "no-store",
                "content-security-policy": "sandbox; default-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                           "img-src 'self' data:; script-src 'none'; frame-ancestors 'self'"}
"""Headers of every served file: an HTML report is shown in a sandbox without scripts, framed only by the studio."""


class Refused(Exception):
    """A path the resolver will not serve (the message says why)."""


def roots() -> dict[str, Path]:
    """The roots files are served from, by name."""
    return {"data": data_dir(), "model": model_dir(), "output": output_dir()}


def resolve(root: str, relative: str, raw_path: bytes = b"") -> Path:
    """The file ``relative`` inside root ``root``.

    Args:
        root: ``data``, ``model`` or ``output``.
        relative: The path inside it, ``/``-separated, as decoded from the URL.
        raw_path: The request's undecoded path (an encoded slash, backslash or NUL in it is refused).

    Raises:
        Refused: For an unknown root, a path that leaves it (by ``..``, an absolute path or a symlink),
            a control character or backslash, an encoded separator, a missing file, or a type not served.
    """
    base = roots().get(root)
    if base is None:
        raise Refused(f"unknown root {root!r}; roots: {sorted(roots())}")
    lowered = raw_path.lower()
    if any(code in lowered for code in (b"%2f", b"%5c", b"%00")):
        raise Refused("encoded '/', '\\' or NUL in the path")
    if not relative or any(ord(c) < 32 or c == "\x7f" for c in relative) or "\\" in relative:
        raise Refused("empty path, control character or backslash")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise Refused("absolute path or '..'")
    real_base = base.resolve()
    target = (real_base / pure).resolve()
    if not target.is_relative_to(real_base):
        raise Refused("the path leads out of its root (a symlink?)")
    if not target.is_file():
        raise Refused("no such file")
    if target.suffix.lower() not in SERVED_TYPES:
        raise Refused(f"files of type {target.suffix or '(none)'!r} are not served")
    return target


def file_response(path: Path) -> FileResponse:
    """Serve a resolved file with its type and :data:`FILE_HEADERS`."""
    kind = SERVED_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=kind, headers=FILE_HEADERS)


def url_for_file(path: Path) -> str | None:
    """The studio's URL of a file under one of the roots (None when it is under none)."""
    resolved = Path(path).resolve()
    for name, base in roots().items():
        base = base.resolve()
        if resolved.is_relative_to(base):
            return f"/files/{name}/{quote(resolved.relative_to(base).as_posix())}"
    return None

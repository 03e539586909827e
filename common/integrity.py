"""Integrity of the weight files this project writes: a sha256 sidecar beside each one.

Every checkpoint (``checkpoints/*.pt``) and every exported model (``model/*.onnx``)
has ``<file>.sha256`` beside it, in ``sha256sum`` format::

    9f2c...e1  last.pt
    41ab...07  last.pt (previous)

The first line is the file's sha256. The sidecar is written *before* the file it
describes replaces the old one, so it also names the digest of the file being
replaced (second line): a process killed between the two writes leaves the old
file, which still matches. :func:`verify_sha256` accepts either digest and refuses
anything else, naming the file: a damaged or altered checkpoint is never trained
from, resumed, exported or evaluated. ``sha256sum -c`` checks the first line by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from common.errors import UserError
from common.files import atomic_write_text, file_sha256
from common.paths import display_path

SUFFIX = ".sha256"
"""The sidecar's suffix, added to the file's full name."""

_LINE = re.compile(r"^([0-9a-f]{64})  (.+?)(?: \(previous\))?$")


def sidecar(path: Path) -> Path:
    """``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sidecar_text(name: str, digest: str, previous: str | None) -> str:
    """The sidecar's content for a file ``name`` with ``digest``, replacing one with ``previous``."""
    lines = f"{digest}  {name}\n"
    if previous and previous != digest:
        lines += f"{previous}  {name} (previous)\n"
    return lines


def recorded_digests(path: Path) -> list[str] | None:
    """The digests a file's sidecar accepts (current first), or None without a sidecar.

    Raises:
        UserError: When the sidecar exists but is not in the expected format.
    """
    side = sidecar(path)
    if not side.is_file():
        return None
    try:
        lines = side.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{display_path(side)}: unreadable ({exc})") from None
    matches = [_LINE.match(line) for line in lines if line.strip()]
    if not matches or not all(matches):
        raise UserError(f"{display_path(side)}: not a sha256 sidecar ('<64 hex digits>  <file name>' per line)")
    return [m.group(1) for m in matches]


def write_sidecar(path: Path, digest: str, replacing: Path | None = None) -> None:
    """Write ``<path>.sha256`` for content with ``digest`` that is about to replace ``replacing``.

    Args:
        path: Where the sidecar goes beside (the file may not exist yet).
        digest: The sha256 of the new content.
        replacing: The file the new content replaces (default ``path``). Its digest is
            kept as the previous one when it matches its own sidecar (an intact file),
            so that a kill before the new content lands leaves a valid pair; a damaged
            or unrecorded file is not vouched for.
    """
    old_file = Path(replacing if replacing is not None else path)
    previous = None
    if old_file.is_file():
        try:
            previous = verify_sha256(old_file)
        except UserError:
            previous = None
    atomic_write_text(sidecar(path), sidecar_text(Path(path).name, digest, previous))


def record_sha256(path: Path, replacing: Path | None = None) -> str:
    """Hash a written file and write its sidecar; returns the digest."""
    digest = file_sha256(path)
    write_sidecar(path, digest, replacing)
    return digest


def verify_sha256(path: Path, required: bool = False) -> str | None:
    """Check a file against its sidecar.

    Args:
        path: The file.
        required: Refuse a file without a sidecar (otherwise it is not checked).

    Returns:
        The file's sha256, or None when there is no sidecar and it is not required.

    Raises:
        UserError: When the file does not match its sidecar (damaged or altered), or
            has none and one is required.
    """
    digests = recorded_digests(path)
    shown = display_path(path)
    if digests is None:
        if required:
            raise UserError(f"{shown}: no {sidecar(path).name} beside it, so its integrity cannot be checked")
        return None
    actual = file_sha256(path)
    if actual not in digests:
        raise UserError(
            f"{shown}: sha256 {actual[:12]}... does not match {sidecar(path).name} ({digests[0][:12]}...): the file was "
            "damaged or altered after it was written; use another copy (or, for a run, another checkpoint)"
        )
    return actual

"""``pipenv run studio``: check the options, hold the studio's lock, bind the port, print the URL, serve.

One studio serves one output folder: a second one on the same ``output/`` is refused
(``<output>/studio/.lock``), as is a port in use. The token comes from
``$IMAGEPIPE_STUDIO_TOKEN`` or is made fresh; it is printed once, in the URL, and never
logged. Serving beyond this machine (``--host 0.0.0.0``) without a token is refused.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.locks import exclusive
from common.paths import display_path, output_dir
from studio.app import Studio, build_app
from studio.executors import LocalExecutor, Scheduler, SlurmExecutor
from studio.jobs import JobStore
from studio.security import LOOPBACK_NAMES, TOKEN_VARIABLE, Guard, allowed_host_names, new_token

@dataclass
class StudioOptions:
    """How to serve the studio.

    Attributes:
        host: Address to listen on (``127.0.0.1``: this machine only; ``0.0.0.0``: every interface).
        port: TCP port.
        no_token: Serve without a token (only on a loopback address).
        max_jobs: Jobs running at once on this machine (0: one per GPU, or one).
        executor: ``local`` or ``slurm``.
        slurm: sbatch options for the Slurm executor (``KEY=VALUE``).
        allowed_hosts: More names the studio may be reached by (a reverse proxy's).
        secure_cookie: Mark the session cookie Secure (behind an HTTPS proxy).
        tensorboard_host: Where TensorBoard started from a run page listens.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    no_token: bool = False
    max_jobs: int = 0
    executor: str = "local"
    slurm: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    secure_cookie: bool = False
    tensorboard_host: str = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only."""
    return host in LOOPBACK_NAMES or host.startswith("127.")


def default_slots() -> int:
    """One job per GPU (``/dev/nvidia<N>``), or one on a machine without."""
    return max(1, len(list(Path("/dev").glob("nvidia[0-9]*"))))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error for a port in use or an address this machine does not have."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use (another studio, or another program); "
                            "choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def build_studio(options: StudioOptions, token: str | None) -> Studio:
    """The studio's parts: queue, executor, scheduler, guard."""
    store = JobStore(output_dir() / "studio" / "jobs.sqlite3")
    executor = SlurmExecutor(options.slurm) if options.executor == "slurm" else LocalExecutor()
    scheduler = Scheduler(store, executor, options.max_jobs or default_slots())
    guard = Guard(token, allowed_host_names(options.host, options.allowed_hosts), options.secure_cookie)
    return Studio(guard, store, scheduler, tensorboard_host=options.tensorboard_host)


def check_options(options: StudioOptions) -> str | None:
    """The token to use (None with ``--no-token``).

    Raises:
        UserError: For ``--no-token`` beyond this machine, a bad port or job count, an unknown executor.
    """
    if options.no_token and not is_loopback(options.host):
        raise UserError(f"--host {options.host} makes the studio reachable from other machines; it will not start "
                        "without a token there (drop --no-token)")
    if not 0 < options.port < 65536:
        raise UserError(f"--port {options.port}: a TCP port, 1..65535")
    if options.max_jobs < 0:
        raise UserError(f"--max-jobs {options.max_jobs}: 0 (one per GPU) or more")
    if options.executor not in ("local", "slurm"):
        raise UserError(f"--executor {options.executor!r}: local or slurm")
    if options.no_token:
        return None
    token = os.environ.get(TOKEN_VARIABLE, "").strip() or new_token()
    if len(token) < 16:
        raise UserError(f"${TOKEN_VARIABLE} is shorter than 16 characters; use a long random token")
    return token


def serve(options: StudioOptions) -> int:
    """Serve the studio until interrupted (jobs it started keep running)."""
    import uvicorn

    token = check_options(options)
    folder = output_dir() / "studio"
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / ".lock", f"the studio of {display_path(output_dir())}"):
        sock = bind(options.host, options.port)
        studio = build_studio(options, token)
        log_to(folder / "studio.log")
        shown = options.host if not options.host.startswith(("0.0.0.0", "::")) else socket.gethostname()
        shown = f"[{shown}]" if ":" in shown else shown
        print(f"studio: serving {display_path(output_dir())} with {studio.scheduler.slots} job slot(s) "
              f"({studio.scheduler.executor.name}); open", flush=True)
        print(f"    http://{shown}:{options.port}/" + (f"?token={token}" if token else ""), flush=True)
        config = uvicorn.Config(build_app(studio), log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=3)
        for number in (signal.SIGINT, signal.SIGTERM):  # uvicorn stops gracefully, then passes the signal on
            signal.signal(number, lambda *_: None)
        uvicorn.Server(config).run(sockets=[sock])
    print("studio: stopped; the jobs it started keep running, and the next studio finds them", flush=True)
    return 0


def log_to(path: Path) -> None:
    """The studio's log (requests without their token, job events) in ``studio.log``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("studio")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False

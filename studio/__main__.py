"""``pipenv run studio``: serve the studio (docs/studio.md). Parses the options and calls
:func:`studio.server.serve`; the web stack is imported when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.cli import command_parser, options_from, run_main

EPILOG = """\
examples:
  pipenv run studio                          this machine only; prints the URL with its token
  pipenv run studio --host 0.0.0.0           reachable from other devices (the token is required)
  pipenv run studio --max-jobs 2             two runs at once on this machine
  pipenv run studio --executor slurm --slurm partition=gpu --slurm time=24:00:00    jobs go to Slurm
  IMAGEPIPE_STUDIO_TOKEN=... pipenv run studio --host 0.0.0.0 --allowed-host studio.example.org   behind a proxy
"""


def build_parser() -> argparse.ArgumentParser:
    """``studio``."""
    parser = command_parser("studio", "Serve the studio: launch, queue, watch and compare runs, review data and "
                            "check predictions in a browser.", EPILOG)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--no-token", action="store_true", help="no token (refused unless --host is a loopback address)")
    parser.add_argument("--max-jobs", type=int, default=0,
                        help="runs at once on this machine (default: one per GPU, or one)")
    parser.add_argument("--executor", choices=["local", "slurm"], default="local",
                        help="where jobs run: local processes (default) or Slurm batch jobs")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="with --executor slurm: an sbatch option for every job (repeatable)")
    parser.add_argument("--allowed-host", dest="allowed_hosts", action="append", default=[], metavar="NAME",
                        help="another name the studio is reached by (a reverse proxy's); repeatable")
    parser.add_argument("--secure-cookie", action="store_true", help="mark the session cookie Secure (HTTPS proxy)")
    parser.add_argument("--tensorboard-host", default="127.0.0.1",
                        help="where TensorBoard started from a run page listens (default 127.0.0.1; it has no "
                        "authentication of its own)")
    return parser


def main(argv: Sequence[str]) -> int | None:
    """Parse the options and serve."""
    from studio.server import StudioOptions, serve

    args = build_parser().parse_args(argv)
    return serve(options_from(StudioOptions, args))


if __name__ == "__main__":
    sys.exit(run_main(main))

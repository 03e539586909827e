"""Helpers shared by the thin ``__main__`` entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from common.errors import UserError


def run_main(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run an entry point, turning user errors into a message and exit status 2.

    Args:
        main: The function that parses ``argv`` and does the work; returns an exit
            status or None for success.
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit status.
    """
    try:
        return main(list(sys.argv[1:] if argv is None else argv)) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def command_parser(command: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """The argument parser of ``pipenv run <command>``; the epilog (examples) keeps its line breaks."""
    return argparse.ArgumentParser(prog=f"pipenv run {command}", description=description, epilog=epilog or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

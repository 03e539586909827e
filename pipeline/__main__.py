"""Entry point of ``pipenv run pipeline``; see :func:`pipeline.run_pipeline`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from common.cli import command_parser, run_main
from pipeline import run_pipeline


def main(argv: Sequence[str]) -> int:
    """Parse arguments (none yet besides --help) and run the pipeline."""
    command_parser(
        "pipeline",
        description="prepare-data -> train -> export -> evaluate on the bundled digits, default configs.",
    ).parse_args(argv)
    result = run_pipeline()
    if result.failed:
        return result.exit_code
    print("[pipeline] done: every stage ran; the evaluation report path is printed above.")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

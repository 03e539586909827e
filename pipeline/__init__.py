"""``pipenv run pipeline``: the whole chain on the bundled data, with default configs.

prepare-data -> train -> export -> evaluate. Each stage runs as its own process
(``python -m <stage>``), exactly as a user would run it by hand, and the stages
find each other's files through their defaults (export takes the newest run,
evaluate the newest model). A stage whose package has no entry point yet is
reported as not implemented, together with everything after it; nothing is faked.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from common.digits import ensure_digits
from common.paths import display_path


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        module: The package run as ``python -m <module>``.
        command: The ``pipenv run`` command a user types for it.
        issue: The tracker issue that delivers it, named while it is missing.
    """

    module: str
    command: str
    issue: int


STAGES: tuple[Stage, ...] = (
    Stage(module="train", command="train", issue=3),
    Stage(module="deploy", command="export", issue=4),
    Stage(module="evaluate", command="evaluate", issue=5),
)


@dataclass(frozen=True)
class PipelineResult:
    """What the pipeline did.

    Attributes:
        completed: Commands of the stages that ran and succeeded, in order.
        missing: Commands of the stages not implemented yet (and those after them).
        failed: The command of the stage that failed, if one did.
        exit_code: 0 unless a stage failed; then that stage's exit status.
    """

    completed: tuple[str, ...]
    missing: tuple[str, ...]
    failed: str | None
    exit_code: int


def stage_available(module: str) -> bool:
    """Whether ``python -m <module>`` has an entry point to run."""
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


def run_pipeline(stages: Sequence[Stage] = STAGES) -> PipelineResult:
    """Prepare the bundled data, then run each stage in order until one fails.

    Args:
        stages: The stages to run, in order.

    Returns:
        What ran, what is missing, and the exit code for the process.
    """
    root = ensure_digits()
    print(f"[pipeline] data set: {display_path(root)}", flush=True)
    completed: list[str] = []
    for index, stage in enumerate(stages):
        if not stage_available(stage.module):
            rest = tuple(s.command for s in stages[index:])
            print(f"[pipeline] {stage.command}: not implemented yet (issue #{stage.issue}); "
                  f"skipped, with what needs its output: {', '.join(rest)}", flush=True)
            return PipelineResult(tuple(completed), rest, None, 0)
        print(f"[pipeline] {stage.command}: python -m {stage.module}", flush=True)
        returncode = subprocess.run([sys.executable, "-m", stage.module]).returncode
        if returncode != 0:
            print(f"[pipeline] {stage.command} failed (exit {returncode}); stopped.", file=sys.stderr, flush=True)
            return PipelineResult(tuple(completed), (), stage.command, returncode)
        completed.append(stage.command)
    return PipelineResult(tuple(completed), (), None, 0)

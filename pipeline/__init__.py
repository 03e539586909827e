"""``pipenv run pipeline``: the whole chain on the bundled data, with default configs.

prepare-data -> train -> export -> evaluate. Each stage runs as its own process
(``python -m <stage>``), exactly as a user would run it by hand, and the stages
find each other's files through their defaults (export takes the newest run,
evaluate the newest model). The first stage that fails stops the chain.
"""

from __future__ import annotations

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
    """

    module: str
    command: str


STAGES: tuple[Stage, ...] = (
    Stage(module="train", command="train"),
    Stage(module="deploy", command="export"),
    Stage(module="evaluate", command="evaluate"),
)


@dataclass(frozen=True)
class PipelineResult:
    """What the pipeline did.

    Attributes:
        completed: Commands of the stages that ran and succeeded, in order.
        failed: The command of the stage that failed, if one did.
        exit_code: 0 unless a stage failed; then that stage's exit status.
    """

    completed: tuple[str, ...]
    failed: str | None
    exit_code: int


def run_pipeline(stages: Sequence[Stage] = STAGES) -> PipelineResult:
    """Prepare the bundled data, then run each stage in order until one fails.

    Args:
        stages: The stages to run, in order.

    Returns:
        What ran, and the exit code for the process.
    """
    root = ensure_digits()
    print(f"[pipeline] data set: {display_path(root)}", flush=True)
    completed: list[str] = []
    for stage in stages:
        print(f"[pipeline] {stage.command}: python -m {stage.module}", flush=True)
        returncode = subprocess.run([sys.executable, "-m", stage.module]).returncode
        if returncode != 0:
            print(f"[pipeline] {stage.command} failed (exit {returncode}); stopped.", file=sys.stderr, flush=True)
            return PipelineResult(tuple(completed), stage.command, returncode)
        completed.append(stage.command)
    return PipelineResult(tuple(completed), None, 0)

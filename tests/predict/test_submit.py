"""``predict --submit slurm --shards N`` without a cluster: what is refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.cli import run_main
from tests.commands import command_main


def predict(*args: str) -> int | None:
    return run_main(command_main("predict"), list(args))


def test_a_dry_run_prints_the_array_and_its_merge(models, mixed, capsys):
    assert predict(str(mixed / "raw"), "--model", str(models.model), "--name", "wk", "--submit", "slurm",
                   "--shards", "3", "--slurm", "cpus-per-task=2", "--dry-run") in (0, None)
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-2\n" in out and '--shard "$SLURM_ARRAY_TASK_ID/3"' in out
    assert "-m predict merge" in out and "/predict/wk-shard-*-of-3 --name wk" in out
    assert not (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "slurm").exists()  # a dry run writes nothing


@pytest.mark.parametrize("extra, said", [
    (["--stream"], "leave out --stream"),
    (["--shard", "1/2"], "leave out --shard"),
    (["--slurm", "nodes=2"], "runs one task on one node"),
    (["--slurm", "grace=10"], "this job does not take it"),
    (["--model", "missing.onnx"], "missing.onnx"),
])
def test_mistakes_are_refused_at_submission_and_nothing_is_written(models, mixed, capsys, extra, said):
    model = [] if "--model" in extra else ["--model", str(models.model)]
    assert predict(str(mixed / "raw"), *model, "--name", "wk", "--submit", "slurm", "--shards", "2", *extra) == 2
    assert said in capsys.readouterr().err
    assert not (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "slurm").exists()

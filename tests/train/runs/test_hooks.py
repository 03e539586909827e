"""Hooks in whole runs: docs/training.md's worked example across a crash and a resume; the documented hook order."""

from __future__ import annotations

import csv
import logging
import re
import types

import pytest

from common.paths import PROJECT_ROOT
from common.run_folder import RunStatus, list_runs
from train.loop.hooks import Hook
from train.run import RunOptions, resume, train

DOCS = PROJECT_ROOT / "docs" / "training.md"


def docs_example() -> types.ModuleType:
    """The worked example of docs/training.md ("A new concern is one file"), as a module."""
    code = re.search(r"```python\n(# lr_csv\.py.*?)```", DOCS.read_text(encoding="utf-8"), re.S).group(1)
    module = types.ModuleType("lr_csv")
    exec(compile(code, str(DOCS), "exec"), module.__dict__)
    return module


class CrashAfter(Hook):
    """Stops a run after epoch ``epoch`` as a crash would leave it (resumable from that epoch's ``last.pt``)."""

    name = "crash_after"

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_epoch(self, run, row):
        if row["epoch"] == self.epoch:
            run.request_stop(RunStatus.CRASHED, "a crash, for the test")


class CountingEpochs(Hook):
    """Counts epochs in its state; remembers the count it started from."""

    name = "counting"

    def __init__(self):
        self.count, self.started_from = 0, None

    def before_run(self, run):
        self.started_from = self.count

    def after_epoch(self, run, row):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.mark.slow
def test_the_worked_example_hook_runs_as_written_and_keeps_its_file_right_across_a_resume(fast_config, tmp_path):
    example = docs_example()
    config = fast_config("epochs=3", "data.train_split=dev", "data.val_split=dev")
    straight = train(config, RunOptions(progress=False, device="cpu", hooks=(example.LearningRateCsv(tmp_path),)))
    rows = list(csv.reader((tmp_path / "lr.csv").open()))
    assert rows[0] == ["step", "lr"] and [int(r[0]) for r in rows[1:]] == list(range(1, 3 * 4 + 1))
    metrics = list(csv.DictReader((straight.run_dir / "metrics.csv").open()))
    by_step = {int(step): float(lr) for step, lr in rows[1:]}
    assert all(by_step[int(row["step"])] == float(row["lr"]) for row in metrics)  # an epoch's lr: its last step's

    crashed_folder = tmp_path / "crashed"
    crashed_folder.mkdir()
    counting = CountingEpochs()
    crashed = train(config, RunOptions(progress=False, device="cpu", hooks=(
        CrashAfter(2), counting, example.LearningRateCsv(crashed_folder))))
    assert crashed.status is RunStatus.CRASHED and crashed.epochs_completed == 2 and counting.count == 2
    counting = CountingEpochs()
    resumed = resume(str(crashed.run_dir), options=RunOptions(progress=False, device="cpu", hooks=(
        counting, example.LearningRateCsv(crashed_folder))))
    assert resumed.status is RunStatus.FINISHED and counting.started_from == 2 and counting.count == 3
    assert (crashed_folder / "lr.csv").read_text() == (tmp_path / "lr.csv").read_text()


@pytest.mark.slow
def test_the_hooks_of_a_run_are_in_the_documented_order(fast_config, monkeypatch):
    import train.run as run_module

    seen = []
    build = run_module.build_hooks

    def remember(*args, **kwargs):
        hooks = build(*args, **kwargs)
        seen.extend(hook.name for hook in hooks.hooks)
        return hooks

    monkeypatch.setattr(run_module, "build_hooks", remember)
    train(fast_config("epochs=1", "data.train_split=dev", "data.val_split=dev"),
          RunOptions(progress=False, device="cpu", profile=2))
    table = re.search(r"\| hook \| file \| what it does \|\n\|---\|---\|---\|\n(.*?)\n\n", DOCS.read_text(), re.S)
    documented = re.findall(r"^\| `(\w+)` \|", table.group(1), re.M)
    assert seen == [name for name in documented if name != "pruning"]  # a sweep's trials add pruning
    logging.getLogger("train").handlers.clear()


class NoThreads(Hook):
    """Meets the operating system's thread limit in the middle of an epoch, as a crowded machine would."""

    name = "no_threads"

    def after_step(self, run, step):
        if step.in_epoch == 3:
            raise RuntimeError("can't start new thread")


@pytest.mark.slow
def test_train_meeting_the_thread_limit_is_recorded_failed_with_the_reason(fast_config):
    with pytest.raises(RuntimeError, match="can't start new thread"):
        train(fast_config("data.train_split=dev", "data.val_split=dev", "epochs=1"),
              RunOptions(progress=False, device="cpu", hooks=(NoThreads(),)))
    (run,) = list_runs()
    manifest = run.read_manifest()
    assert manifest.status == RunStatus.FAILED
    assert manifest.result["error"] == ("no more processes or threads may start (raise `ulimit -u`, or use fewer "
                                        "--threads and --workers)")

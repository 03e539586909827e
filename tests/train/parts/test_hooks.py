"""The hook interface without a run: the loop calls a list, after_run's order, metrics declared once, F1 alike."""

from __future__ import annotations

import ast
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from common.paths import PROJECT_ROOT
from common.run_folder import RunFolder, RunStatus
from evaluate.figures.classification import F1
from evaluate.scoring import gather_evidence
from train.loop.hooks import Hook, Hooks, RunState, ValidationBatch
from train.loop.phase_timer import PhaseTimer
from train.metrics import EPOCH_METRICS, MONITORED
from train.process.distributed import Processes
from train.watch.validation import ValidationWatchHook

DOCS = PROJECT_ROOT / "docs" / "training.md"


def test_the_run_loop_calls_hooks_and_knows_no_concern():
    tree = ast.parse((PROJECT_ROOT / "train" / "loop" / "run_loop.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "contextlib", "dataclasses", "functools", "typing", "common.errors",
                        "common.limits", "common.run_folder", "train.loop.hooks", "train.loop.trainer"}, imported
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    concerns = ("checkpoint", "keeper", "tracker", "signals", "preempt", "profil", "recorder", "log", "barrier",
                "broadcast", "early", "figure", "thread", "watch", "prune", "sweep")
    assert [name for name in names if any(word in name.lower() for word in concerns)] == []
    def is_hooks(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "hooks") or (isinstance(node, ast.Attribute)
                                                                       and node.attr == "hooks")

    sent = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and is_hooks(node.value)}
    assert sent == {"before_run", "before_step", "after_step", "after_validation_batch", "after_validation",
                    "after_epoch", "after_run", "load_state_dict"}


def test_after_run_goes_backwards_and_one_failing_hook_does_not_keep_the_others_from_theirs():
    calls = []

    class Calls(Hook):
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def before_run(self, run):
            calls.append(("before", self.name))

        def after_run(self, run, status):
            calls.append(("after", self.name))
            if self.fail:
                raise OSError(f"{self.name} failed")

    hooks = Hooks([Calls("first"), Calls("second", fail=True), Calls("third")])
    hooks.before_run(None)
    with pytest.raises(OSError, match="second failed"):
        hooks.after_run(None, RunStatus.FINISHED)
    assert calls == [("before", "first"), ("before", "second"), ("before", "third"),
                     ("after", "third"), ("after", "second"), ("after", "first")]
    with pytest.raises(ValueError, match=r"hooks named \['first'\] more than once"):
        Hooks([Calls("first"), Calls("first")])


def test_a_hook_adds_only_declared_metrics_of_its_own():
    trainer = SimpleNamespace(processes=Processes(), timer=PhaseTimer(enabled=False), epoch=0, position=None)
    run = RunState(trainer, Hooks([]))
    run.start_row({"epoch": 1})
    run.add_metrics({"val/macro_f1": 0.5, "system/gpu_utilization": None, "system/rss_gb": float("nan")})
    with pytest.raises(KeyError, match="'val/map' is not a declared training metric"):
        run.add_metrics({"val/map": 0.9})
    with pytest.raises(ValueError, match="val/loss is declared reduced by 'mean'"):
        run.add_metrics({"val/loss": 0.1})
    assert run.take_row() == {"epoch": 1, "val/macro_f1": 0.5}


def test_an_undeclared_metric_never_reaches_metrics_csv_silently(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append_metrics({"epoch": 1, "step": 4, "val/loss": 0.5}, EPOCH_METRICS)
    with pytest.raises(ValueError, match=r"metrics \['val/unknown'\] are not declared"):
        folder.append_metrics({"epoch": 2, "step": 8, "val/unknown": 0.5}, EPOCH_METRICS)
    header = folder.metrics_path.read_text().splitlines()[0].split(",")
    assert header == ["epoch", "step", *(spec.name for spec in EPOCH_METRICS)]


def test_the_docs_list_every_declared_metric_as_it_is_declared():
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \| ([\w-]+) \| ([\w-]+) \| ([\w-]+) \| ([\w-]+) \|$", text, re.M)
    declared = [(s.name, s.reduce, s.direction or "-", "yes" if s.monitor else "-", s.panel or "-",
                 "yes" if s.headline else "-") for s in EPOCH_METRICS]
    assert [row for row in rows if row[0] in {s.name for s in EPOCH_METRICS}] == declared
    assert "val/macro_f1" in MONITORED


def test_training_and_evaluation_compute_f1_alike_also_for_a_class_without_samples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 120)  # class 3 has no sample, and is predicted now and then
    logits = rng.normal(size=(120, 4)).astype(np.float32)
    logits[np.arange(120), labels] += 1.0
    names = ["a", "b", "c", "d"]
    written = []
    recorder = SimpleNamespace(is_main=True, record_per_class=written.extend, log_scalars=lambda values, step: None)
    config = SimpleNamespace(log=SimpleNamespace(worst_images=0, figures_every=1, figure_budget=0.01))
    hook = ValidationWatchHook(recorder, config, names, torch.device("cpu"), EPOCH_METRICS)
    trainer = SimpleNamespace(processes=Processes(), timer=PhaseTimer(enabled=False), epoch=0, position=None)
    run = RunState(trainer, Hooks([hook]))
    for part in np.array_split(np.arange(120), 3):
        hook.after_validation_batch(run, ValidationBatch(torch.zeros(len(part), 1, 1, 1),
                                                         torch.as_tensor(labels[part]),
                                                         torch.as_tensor(logits[part])))
    run.start_row({"epoch": 1})
    hook.after_validation(run)
    hook._record_per_class(1, 10)
    evaluated = F1().compute(gather_evidence(labels, logits, names))
    assert [row["f1"] for row in written] == [round(float(v), 6) for v in evaluated.per_class]
    assert written[3]["support"] == 0 and written[3]["f1"] == 0.0
    assert run.take_row()["val/macro_f1"] == round(evaluated.value, 6)

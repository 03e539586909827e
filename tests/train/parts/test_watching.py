"""The pure parts of watching a run: breakdown and bottleneck, timers, starvation, threads, scores, figures, trackers."""

from __future__ import annotations

import io
import logging

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from train.config import load_train_config
from train.process.distributed import Processes
from common.plotting import confusion_image, safe_text
from train.watch.plots import curves_image, image_grid
from common.plotting import png_bytes
from common.run_folder import MetricSpec
from train.metrics import EPOCH_METRICS
from train.watch.layer_norms import LayerNorms, layer_groups
from train.watch.system_figures import CpuSample, cpu_figures, oversubscription
from train.watch.validation import ValidationTally, figures_due, tag_name
from train.process.threads import (OPENMP_WAIT, apply_threads, choose_threads, describe_openmp_wait, intra_op_threads,
                           set_openmp_wait)
from train.loop.phase_timer import PhaseTimer, breakdown
from train.watch.time_breakdown import BottleneckContext, bottleneck
from train.watch.trackers.base import TRACKERS, RunInfo, Tracker, Trackers, check_trackers, flat_params
from train.watch.steps import auto_every

HOSTILE = ["$\\frac{1}{0}$", "<script>alert(1)</script>", 'a,"b"', "line\nbreak", "tab\there", "\u65e5\u672c",
           "a\\$b", "$", "%s {0} \\\\", "x" * 80]
"""Class names that break naive drawing: mathtext (an invalid one), HTML, CSV, control characters, length."""


# -- breakdown and bottleneck ------------------------------------------------------------------
def shares(**given: float) -> dict[str, float]:
    return breakdown(given, 1.0).fractions


@pytest.mark.parametrize(("given", "source", "expected"), [
    ({"data_wait": 0.62, "forward": 0.2, "backward": 0.1}, "decoded per batch",
     "input-bound: 62% of each step waits for data; pack the data set (pipenv run pack) or raise data.num_workers"),
    ({"data_wait": 0.4, "forward": 0.3}, "pack data/x/packs, read per batch", "hold the pack in memory"),
    ({"copy": 0.3, "forward": 0.3}, "decoded once, in memory", "copy-bound: 30%"),
    ({"augment": 0.3, "forward": 0.3}, "decoded once, in memory", "augmentation-bound: 30%"),
    ({"logging": 0.12, "checkpoint": 0.1, "forward": 0.5}, "decoded once, in memory", "logging-bound: 12%"),
    ({"logging": 0.02, "checkpoint": 0.5, "forward": 0.3}, "decoded once, in memory",
     "checkpoint-bound: 50% of the time writes checkpoints; keep fewer (checkpoint.top_k)"),
    ({"validation": 0.5, "forward": 0.2}, "decoded once, in memory", "validation-bound: 50%"),
    ({"optimizer": 0.35, "forward": 0.3}, "decoded once, in memory", "optimiser-bound: 35%"),
    ({"forward": 0.4, "backward": 0.45, "data_wait": 0.05}, "decoded once, in memory",
     "compute-bound: 85% of each step is the forward and backward pass; train on a GPU"),
])
def test_the_bottleneck_names_what_bounds_the_run_and_what_to_do(given, source, expected):
    sentence = bottleneck(shares(**given), BottleneckContext("cpu", source))
    assert expected in sentence and sentence.count(";") == 1  # one sentence: the finding; what to do


def test_the_bottleneck_on_a_gpu_suggests_gpu_settings_and_starvation_comes_first():
    compute = shares(forward=0.5, backward=0.4)
    assert "amp=true" in bottleneck(compute, BottleneckContext("cuda"))
    starved = bottleneck(shares(data_wait=0.6), BottleneckContext("cpu", "decoded per batch", cpu_wait_fraction=0.45,
                                                            threads=2))
    assert starved.startswith("CPU-starved: the 2 training thread(s) waited for a free core 45% of the time")
    assert "--threads 1" in starved


def test_a_breakdown_has_every_phase_and_the_rest_as_other():
    result = breakdown({"forward": 2.0, "backward": 3.0, "data_wait": 1.0}, 8.0, steps=4)
    fractions = result.fractions
    assert fractions["forward"] == 0.25 and fractions["other"] == pytest.approx(0.25)
    assert result.columns()["time/backward_fraction"] == 0.375 and "time/other_fraction" not in result.columns()
    assert len(result.columns()) == 9 and result.steps == 4
    assert breakdown({"forward": 2.0}, 0.0).fractions["forward"] == 0.0  # no time: no division by zero


# -- the phase timer ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_steps(timer: PhaseTimer, clock: Clock, steps: int, forward: float = 1.0, wait: float = 0.5) -> None:
    def batches():
        for _ in range(steps):
            clock.advance(wait)  # the batch takes this long to come
            yield None

    for _ in timer.batches(batches()):
        with timer.phase("forward"):
            clock.advance(forward)
        clock.advance(0.25)  # outside every phase: "other"
        timer.end_step()


def test_the_timer_counts_phases_waits_and_the_time_between_steps():
    clock = Clock()
    timer = PhaseTimer(clock=clock)
    run_steps(timer, clock, 4)
    with timer.phase("validation"):
        clock.advance(2.0)
    result = timer.take()
    assert result.total == 9.0 and result.steps == 4
    assert result.seconds["data_wait"] == 2.0 and result.seconds["forward"] == 4.0
    assert result.seconds["validation"] == 2.0 and result.fractions["other"] == pytest.approx(1 / 9)
    assert timer.take().total == 0.0  # taking starts a new stretch


def test_on_a_gpu_one_step_in_every_is_synchronised_and_scaled_to_all_steps():
    clock, synchronised = Clock(), []
    timer = PhaseTimer(synchronize=lambda: synchronised.append(clock.now), every=3, clock=clock)
    run_steps(timer, clock, 6)
    result = timer.take()
    assert timer.exact_steps == 0  # reset by take
    assert result.seconds["forward"] == pytest.approx(6.0) and result.seconds["data_wait"] == pytest.approx(3.0)
    # steps 1 and 4: at the start and the end, around the wait and the forward pass (6 each); then the wait
    # for the end of the data, which comes right after a timed step (3)
    assert len(synchronised) == 2 * 6 + 3


def test_a_disabled_timer_measures_nothing_and_passes_items_through():
    timer = PhaseTimer(enabled=False)
    assert list(timer.batches(iter([1, 2]))) == [1, 2]
    with timer.phase("forward"):
        pass
    assert sum(timer.take().seconds.values()) == 0.0


# -- system figures and the thread policy --------------------------------------------------------
def test_cpu_figures_count_the_time_threads_waited_for_a_core():
    before = CpuSample(10.0, 5.0, {1: (1_000, 0), 2: (500, 100)})
    after = CpuSample(12.0, 7.0, {1: (1_001_000, 1_000_000), 3: (1_000_000, 0)})  # thread 2 ended, 3 began
    figures = cpu_figures(before, after)
    assert figures == {"cores_used": 1.0, "wait_fraction": pytest.approx(1 / 3)}
    assert cpu_figures(before, CpuSample(11.0, 5.5, {}))["wait_fraction"] is None  # no schedstat: unknown


def test_the_oversubscription_warning_is_said_again_only_after_it_clearly_cleared(caplog):
    import logging
    from types import SimpleNamespace

    from train.watch.system_figures import SystemFiguresHook

    hook = SystemFiguresHook(torch.device("cpu"), 1, logging.getLogger("watch-test"), is_main=True)
    waits = [0.30, 0.24, 0.27, 0.20, 0.26, 0.10, 0.31]  # hovering at the threshold, then clearly below, then above
    added = []
    run = SimpleNamespace(add_metrics=added.append)
    with caplog.at_level(logging.WARNING, logger="watch-test"):
        for wait in waits:
            hook.monitor.take = lambda wait=wait: {"system/cpu_wait_fraction": wait, "system/cpu_cores_used": 0.8}
            hook.after_validation(run)
    assert [figures["system/cpu_wait_fraction"] for figures in added] == waits
    said = [r.getMessage() for r in caplog.records if "CPU oversubscribed" in r.getMessage()]
    assert len(said) == 2 and "30%" in said[0] and "31%" in said[1]


def test_oversubscription_is_named_with_what_to_do():
    warning = oversubscription(0.45, 0.9, threads=2, cores=2)
    assert "CPU oversubscribed: the process got 0.9 cores' worth of CPU" in warning and "45%" in warning
    assert "--threads 1" in warning and "docs/training.md#thread-policy" in warning
    assert oversubscription(0.1, 1.9, threads=2, cores=2) is None
    assert oversubscription(None, 0.3, threads=2, cores=2) is None  # unknown wait: no guess
    assert "4 intra-op threads on 2 cores" in oversubscription(0.0, 2.0, threads=4, cores=2)
    alone = oversubscription(0.3, 0.8, threads=1, cores=2)  # one thread already: fewer threads is no advice
    assert "--threads" not in alone.split("(docs")[0] and "fewer processes per machine" in alone


def test_the_thread_policy():
    assert choose_threads(3, 8, 8, 0) == (3, "--threads")
    assert choose_threads(100_000, 8, 8, 0) == (8, "--threads 100000 capped at the 8 cores this process may run on")
    assert choose_threads(0, 8, 8, 0) == (8, "torch's default, one per core")
    assert choose_threads(0, 8, 8, 3)[0] == 5 and choose_threads(0, 2, 2, 4)[0] == 1
    environment: dict[str, str] = {}
    assert set_openmp_wait(environment, loaded=()) and environment == OPENMP_WAIT
    assert "spin briefly, then sleep" in describe_openmp_wait(environment)
    user = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not set_openmp_wait(user, loaded=()) and user == {"OMP_WAIT_POLICY": "ACTIVE"}
    late: dict[str, str] = {}
    assert not set_openmp_wait(late, loaded=("torch",)) and late == {}  # too late once torch is loaded
    assert "torch's default" in describe_openmp_wait({})


def test_threads_are_set_and_named_in_the_log_line():
    before = torch.get_num_threads()
    try:
        line = apply_threads(1, "cpu", decode_workers=0)
        assert torch.get_num_threads() == 1 and line.startswith("threads: 1 intra-op (--threads;")
    finally:
        torch.set_num_threads(before)


def test_a_second_run_in_the_process_chooses_from_torch_default_not_from_the_first_run():
    before = torch.get_num_threads()
    try:
        apply_threads(0, "cpu", decode_workers=max(1, before - 1))  # a run that left cores to decoding workers
        line = apply_threads(0, "cpu", decode_workers=0)
        assert torch.get_num_threads() == before and f"threads: {before} intra-op (torch's default" in line
        assert intra_op_threads(1) == 1 and intra_op_threads() == 1  # what a run uses to give the count back
    finally:
        torch.set_num_threads(before)


# -- per-class scores, the validation tally, layer groups ----------------------------------------
def test_the_tally_keeps_the_most_confidently_wrong_images():
    tally = ValidationTally(3, keep=2, device=torch.device("cpu"))
    images = torch.arange(4, dtype=torch.uint8).reshape(4, 1, 1, 1).expand(4, 1, 2, 2)  # image i is all i
    logits = torch.tensor([[5.0, 0, 0], [0, 9, 0], [0, 0, 1], [3, 0, 0]])  # predicted 0, 1, 2, 0
    tally.add(images, torch.tensor([0, 0, 1, 2]), logits)  # wrong: image 1 (very sure), 2 (unsure), 3 (sure)
    tally.add(images[:1], torch.tensor([1]), torch.tensor([[0.0, 0, 8]]))  # wrong again, very sure: image 0
    confusion = tally.finish(Processes())
    assert confusion.tolist() == [[1, 1, 0], [0, 0, 2], [1, 0, 0]]
    worst = tally.worst()
    assert worst.images[:, 0, 0, 0].tolist() == [1, 0] and worst.predicted.tolist() == [1, 2]
    assert worst.captions(["a", "b", "c"])[0] == ["true: a", f"pred: b {worst.confidence[0]:.2f}"]
    right = ValidationTally(3, keep=2, device=torch.device("cpu"))
    right.add(images[:1], torch.tensor([0]), torch.tensor([[5.0, 0, 0]]))
    assert right.worst() is None


def test_layer_groups_descend_until_the_network_splits():
    cnn = ["features.0.0.weight", "features.0.1.bias", "features.3.0.weight", "classifier.weight"]
    assert layer_groups(cnn) == ["features.0", "features.0", "features.3", "classifier"]
    timm = ["model.conv1.weight", "model.layer1.0.conv1.weight", "model.layer2.1.bn2.bias", "model.fc.weight"]
    assert layer_groups(timm) == ["model.conv1", "model.layer1", "model.layer2", "model.fc"]
    assert layer_groups(["weight", "bias"]) == ["(top)", "(top)"]


def test_layer_norms_are_the_norms_of_each_group():
    network = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1), torch.nn.Linear(1, 1))
    network(torch.ones(4, 2)).sum().backward()
    norms = LayerNorms(network).norms()
    first = torch.cat([network[0].weight.flatten(), network[0].bias])
    assert norms["norms/weight/0"] == pytest.approx(first.norm().item(), rel=1e-6)
    grads = torch.cat([p.grad.flatten() for p in network.parameters()])
    assert norms["norms/grad_total"] == pytest.approx(grads.norm().item(), rel=1e-5)
    assert set(LayerNorms(network).histograms()) == {f"{kind}/{g}" for kind in ("weights", "grads") for g in (0, 2, 3)}


# -- figures with hostile class names -----------------------------------------------------------
def test_names_are_shown_on_one_line_and_shortened():
    for name in HOSTILE:
        text = safe_text(name)
        assert "\n" not in text and "\t" not in text and len(text) <= 24
    assert safe_text("$x$") == "$x$" and safe_text("line\nbreak") == "line\\nbreak"  # $: mathtext is off, not escaped


def decoded(image: np.ndarray) -> Image.Image:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return Image.open(io.BytesIO(png_bytes(image)))


def test_figures_draw_hostile_names_even_where_latex_is_configured():
    rng = np.random.default_rng(1)
    with matplotlib.rc_context({"text.usetex": True}):  # a user's matplotlibrc; LaTeX is not even installed
        grid = image_grid(rng.integers(0, 256, (10, 3, 12, 20)), [[name, "pred: $"] for name in HOSTILE], "$t$")
        matrix = confusion_image(rng.integers(0, 9, (10, 10)), HOSTILE, "confusion $\\alpha")
        history = [{"epoch": e, "step": 3 * e, "train/loss": 1 / e, "val/loss": 1.1 / e, "train/accuracy": 0.5,
                    "val/accuracy": 0.6, "lr": 0.1, "val/macro_f1": 0.4} for e in (1, 2, 3)]
        per_class = [{"epoch": e, "class": k, "f1": 0.1 * k, "name": HOSTILE[k]} for e in (1, 2) for k in range(10)]
        curves = curves_image(history, [{"epoch": 0.5, "train/loss": 2.0, "lr": 0.01}], per_class,
                              {"epoch": 2, "metric": "val/loss", "value": 0.5}, HOSTILE, "run $x", EPOCH_METRICS)
    assert decoded(grid).size[0] > 4 * 20 and decoded(matrix).size == (matrix.shape[1], matrix.shape[0])
    width, height = decoded(curves).size  # 11 x 7.5 inches at 100 dpi, cut to the box that holds every text
    assert 1050 <= width <= 1100 and 700 <= height <= 750
    many = [{"epoch": 1, "class": k, "f1": 0.5, "name": str(k)} for k in range(30)]  # worst/median/best lines
    assert curves_image(history, [], many, None, [str(k) for k in range(30)], "30 classes",
                        EPOCH_METRICS).shape[2] == 3


def test_curves_draw_every_declared_metric_in_the_panel_it_names(monkeypatch):
    import train.watch.plots as plots

    legends = {}

    def remember(figure):
        for axes in figure.axes:
            legend = axes.get_legend()
            legends[axes.get_title()] = [text.get_text() for text in legend.get_texts()] if legend else []
        return np.zeros((1, 1, 3), np.uint8)

    monkeypatch.setattr(plots, "render_figure", remember)
    declared = (*EPOCH_METRICS, MetricSpec("val/new_score", "validation new score", "global", "max", panel="accuracy"))
    history = [{"epoch": e, "train/loss": 1 / e, "val/loss": 1.1 / e, "train/accuracy": 0.5, "val/accuracy": 0.6,
                "lr": 0.1, "val/macro_f1": 0.4, "val/new_score": 0.3} for e in (1, 2)]
    plots.curves_image(history, [], [], None, ["a"], "run", declared)
    assert legends["accuracy and scores"] == ["train accuracy", "validation accuracy", "validation macro F1",
                                              "validation new score"]
    assert legends["loss"] == ["train loss", "validation loss"] and legends["learning rate"] == ["learning rate"]


# -- schedules and names ------------------------------------------------------------------------
def test_step_points_and_the_figure_budget():
    assert auto_every(1200) == 12 and auto_every(6) == 1 and auto_every(0) == 1
    assert figures_due(4, 1, spent=1.0, last_cost=0.3, elapsed=100.0, budget=0.05)
    assert not figures_due(4, 1, spent=4.9, last_cost=0.3, elapsed=100.0, budget=0.05)  # over the budget
    assert not figures_due(3, 2, spent=0.0, last_cost=0.0, elapsed=100.0, budget=0.05)  # not an epoch to draw
    assert figures_due(1, 1, spent=5.0, last_cost=0.4, elapsed=0.1, budget=1)  # 1: every time, whatever it costs
    assert tag_name(3, "a b/$c") == "03_a_b_c" and tag_name(12, "ok.name-1") == "12_ok.name-1"


def test_the_log_section_is_validated():
    with pytest.raises(UserError, match=r"log.every_steps: must be >= 0.*log.figure_budget: must be in \(0, 1\].*"
                                        r"log.trackers: \['wandb'\] named more than once.*log.wandb.mode"):
        load_train_config(overrides=["log.every_steps=-1", "log.figure_budget=0", "log.trackers=[wandb,wandb]",
                                     "log.wandb.mode=sometimes"])
    config = load_train_config(overrides=["log.trackers=[tensorboard,mlflow]"]).config
    assert config.log.trackers == ("tensorboard", "mlflow") and config.to_dict()["log"]["trackers"] == ["tensorboard",
                                                                                                           "mlflow"]


# -- the tracker interface ---------------------------------------------------------------------
class Remembering(Tracker):
    calls: list = []

    def log_scalars(self, values, step):
        self.calls.append(("scalars", dict(values), step))

    def log_image(self, tag, image, step):
        self.calls.append(("image", tag, image.shape, step))

    def log_summary(self, hparams, metrics, step):
        self.calls.append(("summary", dict(metrics)))

    def log_files(self, paths):
        self.calls.append(("files", [p.name for p in paths]))

    def log_card(self, name, card):
        self.calls.append(("card", name))

    def close(self, status):
        self.calls.append(("close", status))


class Failing(Remembering):
    def log_scalars(self, values, step):
        raise ConnectionError("server gone")


@pytest.fixture
def fake_trackers():
    TRACKERS.register("remembering")(Remembering)
    TRACKERS.register("failing")(Failing)
    Remembering.calls = []
    yield
    TRACKERS.unregister("remembering")
    TRACKERS.unregister("failing")


def test_trackers_get_everything_and_a_failing_one_is_switched_off(fake_trackers, tmp_path, caplog):
    from common.run_folder import RunFolder, RunStatus

    run = RunInfo(RunFolder(tmp_path), {"log": {}}, {"name": "net", "hash": "h"})
    trackers = Trackers(["remembering", "failing"], logging.getLogger("test.trackers"))
    trackers.log_scalars({"before": 1.0}, 1)  # nothing is open yet: it goes nowhere
    trackers.open(run)
    with caplog.at_level(logging.WARNING, logger="test.trackers"):
        trackers.log_scalars({"a": 1.0}, 3)
        trackers.log_scalars({"a": 2.0}, 4)
    assert caplog.text.count("tracker failing failed (ConnectionError: server gone)") == 1
    assert list(trackers.active) == ["remembering"]
    (tmp_path / "exists.txt").write_text("x")
    trackers.log_image("grid", np.zeros((2, 3, 3), np.uint8), 4)
    trackers.log_files([tmp_path / "exists.txt", tmp_path / "missing.txt"])
    trackers.log_card("best_checkpoint", {"epoch": 1})
    trackers.close(RunStatus.FINISHED)
    assert [c[0] for c in Remembering.calls] == ["scalars", "scalars", "image", "files", "card", "close"]
    assert Remembering.calls[3] == ("files", ["exists.txt"]) and Remembering.calls[-1] == ("close", "finished")
    assert Remembering.calls[0] == ("scalars", {"a": 1.0}, 3)


def test_an_unknown_tracker_or_a_missing_package_is_a_clear_error(fake_trackers, monkeypatch):
    with pytest.raises(UserError, match=r"log.trackers: unknown tracker 'neptune'; registered: \[.*'mlflow'.*'tensorboard'"
                                        r".*'wandb'\]"):
        check_trackers(["tensorboard", "neptune"])
    monkeypatch.setattr(Remembering, "requires", ("no_such_package_here",))
    with pytest.raises(UserError, match=r"'remembering' needs the no_such_package_here package, which is not installed; "
                                        r"install the optional trackers: pipenv sync --categories=\"train trackers\""):
        check_trackers(["remembering"])


@pytest.mark.parametrize("uri, said", [
    ("http://127.0.0.1:9", r"log.mlflow.tracking_uri: 127.0.0.1:9 cannot be reached \(Connection refused\) within 5 s"),
    ("nosuchscheme://x", r"log.mlflow.tracking_uri 'nosuchscheme://x': MLflow cannot use it"),
])
def test_train_with_an_mlflow_server_it_cannot_use_is_refused_in_seconds_with_no_run_folder(fast_config, uri, said):
    import time

    from common.run_folder import runs_root
    from train.run import RunOptions, train

    started = time.monotonic()
    with pytest.raises(UserError, match=said):
        train(fast_config("log.trackers=[mlflow]", f"log.mlflow.tracking_uri={uri}"), RunOptions(progress=False,
                                                                                                 device="cpu"))
    assert time.monotonic() - started < 30 and not runs_root().exists()  # MLflow's own retries took 259 s


class Unstartable(Tracker):
    def __init__(self, run):
        raise ValueError("no such project")


def test_train_whose_tracker_cannot_start_leaves_no_half_made_run_folder(fast_config):
    from common.run_folder import runs_root
    from train.run import RunOptions, train

    TRACKERS.register("unstartable")(Unstartable)
    try:
        with pytest.raises(UserError, match=r"log.trackers: unstartable could not start: ValueError: no such project"):
            train(fast_config("log.trackers=[unstartable]"), RunOptions(progress=False, device="cpu"))
    finally:
        TRACKERS.unregister("unstartable")
    assert list(runs_root().iterdir()) == []


def test_flat_params_are_plain_values():
    flat = flat_params({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "init": {"weights": None}, "amp": True})
    assert flat == {"optim.lr": 0.1, "optim.betas": "[0.9, 0.99]", "init.weights": "None", "amp": True}

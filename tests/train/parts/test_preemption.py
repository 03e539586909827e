"""The parts of preemption-safe training, without training: signals, the save schedule, batch seeds,
positions inside an epoch, checkpoint formats, auto-resume's decision and what `runs` says."""

from __future__ import annotations

import json
import logging
import os
import signal
from types import SimpleNamespace

import pytest
import torch

from common.errors import UserError
from common.locks import exclusive
from common.run_folder import RunFolder, RunManifest, RunStatus
from networks import load_network_config
from networks.checkpoint import read_checkpoint
from train.resilience.auto_resume import decide
from train.experiments.runs import format_show, format_table, list_records, load_run
from train.resilience.checkpoints import save_checkpoint
from train.config import CheckpointConfig, load_train_config
from train.data.loading import SplitData, batch_seed, iterate_batches
from train.process.distributed import Processes
from train.loop.epoch import EpochProgress
from train.loop.hooks import Hooks, RunState, Step, StopRequest
from train.loop.phase_timer import PhaseTimer
from train.resilience.checkpoints import CheckpointHook
from train.resilience.preemption import PreemptionHook, StopSignals, stop_status


def test_batch_seeds_are_a_pure_function_of_seed_epoch_batch_and_rank():
    seeds = {batch_seed(s, e, b, r) for s in range(3) for e in range(4) for b in range(50) for r in range(2)}
    assert len(seeds) == 3 * 4 * 50 * 2
    assert batch_seed(7, 3, 11, 1) == batch_seed(7, 3, 11, 1) and 0 <= batch_seed(7, 3, 11, 1) < 2**63


def test_batches_from_a_start_are_the_tail_of_the_epoch():
    images = torch.arange(10 * 4, dtype=torch.uint8).reshape(10, 1, 2, 2)  # (N*C*H*W,) -> (N, C, H, W)
    split = SplitData("train", None, None, list(range(10)), torch.arange(10), images, None)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    every = list(iterate_batches(split, order, 3, 0, drop_singleton=True))
    tail = list(iterate_batches(split, order, 3, 0, drop_singleton=True, start=2))
    assert len(every) == 3 and len(tail) == 1  # the last batch of one sample is dropped
    assert torch.equal(tail[0][0], every[2][0]) and torch.equal(tail[0][1], every[2][1])


def test_a_signal_only_records_a_stop_and_the_previous_handlers_come_back(capfd):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals(["SIGTERM", "SIGINT"]) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt without the handler
        assert signals.received == signal.SIGTERM and signals.count == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    err = capfd.readouterr().err
    assert "SIGTERM: stopping after this optimiser step" in err and "SIGINT: already stopping" in err
    assert (stop_status(signal.SIGINT), stop_status(signal.SIGTERM), stop_status(signal.SIGUSR1)) == (
        "interrupted", "preempted", "preempted")


def test_recovery_checkpoints_follow_the_steps_and_the_clock_and_a_signal_stops(tmp_path):
    now, saves = [0.0], []
    config = load_train_config(overrides=["checkpoint.every_minutes=0.5", "checkpoint.every_steps=4",
                                          "checkpoint.signals=[SIGUSR1]"]).config
    position = SimpleNamespace(epoch=0, done=0, state_dict=lambda processes, steps: {"done": position.done})
    trainer = SimpleNamespace(processes=Processes(), timer=PhaseTimer(enabled=False), epoch=0, step=0,
                              position=position, steps_per_epoch=100)
    log = logging.getLogger("test")
    checkpoints = CheckpointHook(RunFolder(tmp_path), config, log, clock=lambda: now[0])
    checkpoints.payload = lambda run, row, state=None: state
    checkpoints.keeper.write = lambda decision, payload: saves.append((payload["done"], now[0]))
    with StopSignals(config.checkpoint.signals) as signals:
        hooks = Hooks([PreemptionHook(signals, RunFolder(tmp_path), log), checkpoints])
        run = RunState(trainer, hooks)
        hooks.before_run(run)

        def step(number: int) -> object:
            trainer.step = position.done = number
            hooks.after_step(run, Step(None, None, None, None, 0.1, number, number, last=False))
            return run.agree()

        for number in range(1, 10):
            now[0] += 1.0
            assert step(number) is None
        assert saves == [(4, 4.0), (8, 8.0)]  # every 4 steps; 30 s have not passed
        now[0] += 30.0
        assert step(10) is None and len(saves) == 2  # the main process's clock votes now ...
        assert step(11) is None and saves[-1] == (11, 39.0)  # ... and every process writes at the next step
        assert step(12) is None and saves[-1] == (12, 39.0)
        os.kill(os.getpid(), signal.SIGUSR1)
        stop = step(13)
        assert (stop.status, stop.signal, stop.reason) == (RunStatus.PREEMPTED, signal.SIGUSR1, "preempted by SIGUSR1")
        assert len(saves) == 4  # the stop's checkpoint is written when the run ends
        run.clean = True
        hooks.after_run(run, stop.status)
    assert saves[-1] == (13, 39.0) and len(saves) == 5 and run.result["signal"] == "SIGUSR1"
    assert run.result["position"] == {"epoch": 0, "step_in_epoch": 13, "steps_per_epoch": 100}
    assert run.message == "preempted by SIGUSR1 in epoch 1 at step 13 of 100"


def test_the_highest_stop_request_wins_and_only_known_statuses_can_be_asked_for():
    trainer = SimpleNamespace(processes=Processes(), timer=PhaseTimer(enabled=False), epoch=0, position=None)
    run = RunState(trainer, Hooks([]))
    run.request_stop(RunStatus.PREEMPTED, "signal", signal.SIGTERM)
    run.request_stop(RunStatus.STOPPED_EARLY, "no better")
    run.request_stop(RunStatus.INTERRUPTED, "ctrl-c", signal.SIGINT)
    assert run.agree(settle=True) == StopRequest(RunStatus.STOPPED_EARLY, "no better")
    for status in (RunStatus.FINISHED, RunStatus.RUNNING):
        with pytest.raises(ValueError, match="a run cannot stop as"):
            run.request_stop(status)


def test_a_position_inside_an_epoch_round_trips_and_refuses_another_world_size():
    progress = EpochProgress.start(2, torch.device("cpu"))
    progress.add(torch.tensor(0.5), torch.eye(3), torch.tensor([0, 1, 0]), 0.01)
    state = progress.state_dict(Processes(), steps_per_epoch=10)
    assert state["sums"].tolist() == [[1.5, 2.0, 3.0]] and state["step_in_epoch"] == 1
    again = EpochProgress.from_state(state, Processes(), torch.device("cpu"), 10, "last.pt")
    assert (again.epoch, again.done, again.loss_sum.item(), again.correct.item(), again.seen) == (2, 1, 1.5, 2, 3)
    with pytest.raises(UserError, match=r"last\.pt was written inside epoch 3 \(step 1 of 10\) by 1 process"):
        EpochProgress.from_state(state, Processes(0, 2), torch.device("cpu"), 10, "last.pt")
    with pytest.raises(UserError, match=r"same number of processes and steps per epoch \(now 1 and 12\)"):
        EpochProgress.from_state(state, Processes(), torch.device("cpu"), 12, "last.pt")


def test_checkpoint_settings_are_validated():
    with pytest.raises(UserError, match=r"checkpoint\.signals: \['SIGKILL'\]: each of"):
        load_train_config(overrides=["checkpoint.signals=[SIGKILL]"])
    with pytest.raises(UserError, match=r"checkpoint\.every_minutes: must be >= 0"):
        load_train_config(overrides=["checkpoint.every_minutes=-1"])
    config = load_train_config(overrides=["checkpoint.signals=[]", "checkpoint.every_steps=50"]).config
    assert config.checkpoint.signals == () and config.to_dict()["checkpoint"]["signals"] == []


def test_checkpoints_of_formats_1_and_2_still_read_and_format_4_is_refused(tmp_path, tiny_network):
    network = load_network_config(tiny_network)
    old = {"format_version": 1, "network_config": network.to_dict(), "network_hash": network.hash,
           "class_names": ["a"], "model": {"w": torch.zeros(1)}}
    save_checkpoint(old, tmp_path / "old.pt")
    assert read_checkpoint(tmp_path / "old.pt")["position"] is None
    keeper, stopper = {"best": None, "kept": []}, {"best": 0.5, "bad_epochs": 2}
    save_checkpoint({**old, "format_version": 2, "checkpoint_keeper": keeper, "early_stopping": stopper},
                    tmp_path / "two.pt")
    assert read_checkpoint(tmp_path / "two.pt")["hooks"] == {"checkpoints": keeper, "early_stopping": stopper}
    save_checkpoint({**old, "format_version": 4}, tmp_path / "new.pt")
    with pytest.raises(UserError, match=r"checkpoint format 4; this code reads formats \[1, 2, 3\]"):
        read_checkpoint(tmp_path / "new.pt")


def make_run(name: str, status: str, tiny_network, last_pt: bool = True, **manifest) -> RunFolder:
    """A run folder as training leaves it (config, manifest, maybe last.pt), without training."""
    folder = RunFolder.create(name)
    network = load_network_config(tiny_network)
    folder.write_config(load_train_config(overrides=[f"network={tiny_network}"]).config.to_dict(),
                        network.to_dict(), network.hash)
    folder.write_manifest(RunManifest(run=folder.name, status=status, started="2026-01-01T00:00:00+00:00",
                                      **manifest))
    if last_pt:
        (folder.checkpoints_dir / "last.pt").write_bytes(b"checkpoint")
    return folder


def test_auto_resume_decides_from_the_newest_run_of_the_name(tiny_network):
    config = load_train_config(overrides=[f"network={tiny_network}"]).config
    assert decide("flowers", config, ()).action == "new"
    make_run("flowers-b", "preempted", tiny_network)  # another name that starts alike
    run = make_run("flowers", "preempted", tiny_network)
    decision = decide("flowers", config, ())
    assert (decision.action, decision.run, decision.status) == ("resume", str(run.path), "preempted")
    with pytest.raises(UserError, match=r"the config differs from the run's \(epochs: 60 -> 31\).*--allow-change epochs"):
        decide("flowers", load_train_config(overrides=[f"network={tiny_network}", "epochs=31"]).config, ())
    assert decide("flowers", load_train_config(overrides=[f"network={tiny_network}", "epochs=31"]).config,
                  ["epochs"]).action == "resume"
    with exclusive(run.lock_path, "run"):
        manifest = run.read_manifest()
        manifest.status = "running"
        run.write_manifest(manifest)
        with pytest.raises(UserError, match=r"is in use by pid \d+ on host .*does not start a second run"):
            decide("flowers", config, ())
    assert decide("flowers", config, ()).status == "crashed"  # running, but nobody holds the lock


def test_auto_resume_leaves_an_ended_run_and_replaces_one_without_a_checkpoint(tiny_network):
    config = load_train_config(overrides=[f"network={tiny_network}"]).config
    make_run("roses", "finished", tiny_network)
    decision = decide("roses", config, ())
    assert decision.action == "ended" and decision.status == "finished"
    make_run("tulips", "crashed", tiny_network, last_pt=False)
    decision = decide("tulips", config, ())
    assert decision.action == "new" and "stopped before its first checkpoint" in decision.note


def test_runs_shows_the_command_that_continues_a_stopped_run(tiny_network):
    result = {"epochs_completed": 3, "position": {"epoch": 3, "step_in_epoch": 17, "steps_per_epoch": 40},
              "signal": "SIGTERM"}
    stopped = make_run("daisies", "preempted", tiny_network, world_size=2, result=result)
    make_run("done", "finished", tiny_network)
    table = format_table(list_records())
    expected = f"continue {stopped.name} (preempted): pipenv run torchrun <as before: 2 processes> -m train --resume "
    assert expected in table and "continue done" not in table
    shown = format_show(load_run(stopped))
    assert "stopped by SIGTERM in epoch 4 at step 17 of 40" in shown and "continue: pipenv run torchrun" in shown
    assert json.loads(stopped.manifest_path.read_text())["status"] == "preempted"


def test_a_collective_failing_because_a_peer_died_is_said_in_one_line():
    from train.process.distributed import lost_peer_message

    gloo = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
                        "[127.0.0.1]:59542: Connection reset by peer. This is typically caused by a remote worker "
                        "hanging or bugs in the application.")
    message = lost_peer_message(gloo, {"WORLD_SIZE": "2"})
    assert message.startswith("another process of this run stopped, so this one cannot go on (Read error "
                              "[127.0.0.1]:59542: Connection reset by peer)")
    assert "--auto-resume" in message and "pair.cc" not in message
    assert lost_peer_message(gloo, {}) is None  # not under a launcher: the error is something else
    assert lost_peer_message(RuntimeError("CUDA out of memory"), {"WORLD_SIZE": "2"}) is None
    assert lost_peer_message(ValueError("connection reset by peer"), {"WORLD_SIZE": "2"}) is None

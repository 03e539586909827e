"""Training runs end to end on the real digits: the run folder, resume, early stopping, NaN guard, DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.errors import UserError
from common.integrity import verify_sha256
from common.paths import PROJECT_ROOT
from networks.checkpoint import read_checkpoint
from train.config import load_train_config
from train.metrics import EPOCH_METRICS
from train.run import RunOptions, resume, train

QUIET = RunOptions(progress=False, device="cpu")
TIMING = tuple(spec.name for spec in EPOCH_METRICS if spec.machine)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == [], f"tensors differ: {different[:5]}"


@pytest.mark.slow
def test_dev_run_writes_every_file_of_the_run_folder(fast_config):
    result = train(fast_config("checkpoint.top_k=1"), RunOptions(progress=False, device="cpu", dev=True))
    run = result.run_dir
    assert result.status == "finished" and result.epochs_completed == 2
    assert run.parent.parent == Path(os.environ["IMAGEPIPE_OUTPUT"]) and run.name.startswith("tiny-dev-")
    # config.yaml: complete, pins the network, and repeats the run
    again = load_train_config(run / "config.yaml")
    assert again.config.data.train_split == "dev" and again.network_hash and again.network_config["name"] == "tiny"
    # manifest.json
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["ended"] and manifest["started"]
    assert len(manifest["git"]["commit"]) == 40 and isinstance(manifest["git"]["dirty"], bool)
    if manifest["git"]["dirty"]:
        assert (run / "git.diff").is_file()
    assert manifest["packages"]["torch"].startswith("2.14.1")
    assert len(manifest["data"]["lists"]["dev"]["sha256"]) == 64
    assert manifest["result"]["epochs_completed"] == 2
    # log, metrics, tensorboard
    log = (run / "log.txt").read_text()
    assert "epoch 2/2" in log and "MACs per image" in log
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr"} <= set(rows[0])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # checkpoints: last, best, top-1; plain dicts loadable with weights_only=True
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.pt" in names and "best.pt" in names and len([n for n in names if n.startswith("epoch=")]) == 2
    assert sorted(n for n in names if n.endswith(".sha256")) == sorted(f"{n}.sha256" for n in names if n.endswith(".pt"))
    for name in (n for n in names if n.endswith(".pt")):
        assert verify_sha256(run / "checkpoints" / name, required=True)
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["class_names"] == [str(d) for d in range(10)] and checkpoint["epoch"] == 2
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in checkpoint["model"])


@pytest.mark.slow
def test_a_run_repeats_exactly_from_its_config_yaml(fast_config):
    first = train(fast_config("data.train_split=dev"), QUIET)
    second = train(load_train_config(first.run_dir / "config.yaml"), QUIET)
    assert second.run_dir != first.run_dir
    assert_same_weights(final_weights(first.run_dir), final_weights(second.run_dir))


@pytest.mark.slow
def test_resume_after_a_kill_ends_with_bitwise_identical_weights(tiny_network, digits_root, tmp_path):
    args = [f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=12", "batch_size=32",
            "augment.rotation=10", "optim.label_smoothing=0.1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(tmp_path / "killed")}
    process = subprocess.Popen([sys.executable, "-m", "train", *args, "--name", "killed"], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        found = list((tmp_path / "killed" / "train").glob("killed-*/metrics.csv"))
        if found and len(found[0].read_text().splitlines()) >= 3:  # header + 2 epochs
            metrics = found[0]
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert metrics is not None, "the run ended before it could be killed"
    run_dir = metrics.parent
    stopped_at = read_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"]
    assert 2 <= stopped_at < 12
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"  # killed, not finished

    os.environ["IMAGEPIPE_OUTPUT"] = str(tmp_path / "killed")
    resumed = resume(str(run_dir), options=QUIET)
    os.environ["IMAGEPIPE_OUTPUT"] = str(tmp_path / "straight")
    straight = train(load_train_config(overrides=args[:6]), QUIET)

    assert resumed.status == straight.status == "finished" and resumed.epochs_completed == 12
    assert_same_weights(final_weights(resumed.run_dir), final_weights(straight.run_dir))
    rows = [list(csv.DictReader((r / "metrics.csv").open())) for r in (resumed.run_dir, straight.run_dir)]
    strip = [[{k: v for k, v in row.items() if k not in TIMING} for row in table] for table in rows]
    assert strip[0] == strip[1]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumed"][0]["epoch"] == stopped_at


@pytest.mark.slow
def test_resume_refuses_config_changes_unless_allowed(fast_config):
    run = train(fast_config("data.train_split=dev", "data.val_split=dev"), QUIET)
    with pytest.raises(UserError, match=r"already completed 2 of 2 epochs; to train longer: .*--allow-change epochs"):
        resume(str(run.run_dir), options=QUIET)
    with pytest.raises(UserError, match=r"config differs from the run's \(epochs: 2 -> 3\).*--allow-change epochs"):
        resume(str(run.run_dir), ["epochs=3"], options=QUIET)
    with pytest.raises(UserError, match=r"the network cannot change when resuming"):
        resume(str(run.run_dir), ["network=digits_cnn", "epochs=3"], ["network", "epochs"], options=QUIET)
    longer = resume(str(run.run_dir), ["epochs=3"], ["epochs"], options=QUIET)
    assert longer.epochs_completed == 3 and longer.run_dir == run.run_dir
    assert load_train_config(run.run_dir / "config.yaml").config.epochs == 3
    assert len((run.run_dir / "metrics.csv").read_text().splitlines()) == 4
    assert resume("last", ["epochs=4"], ["epochs"], options=QUIET).run_dir == run.run_dir


@pytest.mark.slow
def test_train_resume_after_the_training_labels_changed_is_refused_unless_allowed_and_recorded(fast_config,
                                                                                               digits_root, tmp_path):
    digits = Path(shutil.copytree(digits_root, tmp_path / "digits"))
    run = train(fast_config(f"data.dataset={digits}", "data.train_split=dev", "data.val_split=dev", "epochs=1"),
                QUIET)
    dev = digits / "lists" / "dev.txt"
    lines = dev.read_text().splitlines(keepends=True)
    dev.write_text("".join(line if i % 3 or line.startswith("#") else
                           f"{line.split()[0]} {(int(line.split()[1]) + 1) % 10}\n"
                           for i, line in enumerate(lines)))  # a third of the labels changed
    manifest = (run.run_dir / "manifest.json").read_bytes()
    with pytest.raises(UserError, match=r"the data changed since the run began: dev \(.*dev.txt: sha256 .* then, "
                                        r".* now\).*--allow-change data"):
        resume(str(run.run_dir), ["epochs=2"], ["epochs"], options=QUIET)
    assert (run.run_dir / "manifest.json").read_bytes() == manifest  # nothing written
    longer = resume(str(run.run_dir), ["epochs=2"], ["epochs", "data"], options=QUIET)
    resumed = json.loads((run.run_dir / "manifest.json").read_text())["resumed"]
    assert longer.epochs_completed == 2 and list(resumed[-1]["changes"]["lists"]) == ["dev"]


@pytest.mark.slow
def test_early_stopping_stops_and_records_why(fast_config):
    result = train(fast_config("epochs=10", "early_stopping.patience=1", "early_stopping.min_delta=1.0",
                               "checkpoint.monitor=val/accuracy", "checkpoint.mode=max",
                               "data.train_split=dev", "data.val_split=dev"), QUIET)
    assert result.status == "stopped_early" and result.epochs_completed == 2
    assert "early stopping: val/accuracy did not improve by more than 1.0 for 1 epochs" in result.message
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "stopped_early"
    assert read_checkpoint(result.run_dir / "checkpoints" / "last.pt")["hooks"]["early_stopping"]["bad_epochs"] == 1


@pytest.mark.slow
def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(fast_config):
    # epoch 1 trains normally; from epoch 2 the step schedule multiplies the rate by 1e12
    result = train(fast_config("epochs=4", "optim.name=sgd", "optim.lr=0.01", "schedule.name=step",
                               "schedule.step_epochs=1", "schedule.gamma=1e12", "data.train_split=dev",
                               "data.val_split=dev"), QUIET)
    assert result.status == "diverged" and result.epochs_completed == 1
    assert "training diverged: the loss became" in result.message and "in epoch 2" in result.message
    last = read_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert json.loads((result.run_dir / "manifest.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_initialising_from_another_runs_weights(fast_config, tmp_path):
    source = train(fast_config("epochs=1", "data.train_split=dev", "data.val_split=dev"), QUIET)
    best = source.run_dir / "checkpoints" / "best.pt"
    strict = train(fast_config("epochs=1", f"init.weights={best}", "optim.lr=1e-9", "schedule.name=constant",
                               "data.train_split=dev", "data.val_split=dev"), QUIET)
    log = (strict.run_dir / "log.txt").read_text()
    assert f"initial weights from {best} (strict): loaded" in log
    assert strict.metrics["val/accuracy"] == pytest.approx(source.metrics["val/accuracy"], abs=0.02)
    wider = tmp_path / "wider.yaml"
    wider.write_text((tmp_path / "tiny.yaml").read_text().replace("[8, 16]", "[8, 24]"))
    with pytest.raises(UserError, match="use init.mode=partial"):
        train(fast_config("epochs=1", f"network={wider}", f"init.weights={best}"), QUIET)
    partial = train(fast_config("epochs=1", f"network={wider}", f"init.weights={best}", "init.mode=partial",
                                "data.train_split=dev", "data.val_split=dev"), QUIET)
    assert "(partial): loaded" in (partial.run_dir / "log.txt").read_text()
    assert "reshaped" in (partial.run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_a_changed_shared_network_config_is_refused_when_repeating(fast_config, tiny_network):
    run = train(fast_config("epochs=1", "data.train_split=dev", "data.val_split=dev"), QUIET)
    tiny_network.write_text(tiny_network.read_text().replace("dropout: 0.1", "dropout: 0.3"))
    with pytest.raises(UserError, match=r"pins network config .* now hashes to .*arch\.params\.dropout: 0\.1 -> 0\.3"):
        train(load_train_config(run.run_dir / "config.yaml"), QUIET)


@pytest.mark.slow
def test_mismatched_class_count_is_a_clear_error(fast_config, tmp_path):
    five = tmp_path / "five.yaml"
    five.write_text((tmp_path / "tiny.yaml").read_text().replace("num_classes: 10", "num_classes: 5"))
    with pytest.raises(UserError, match=r"classes\.txt has 10 classes but network config 'five' has num_classes 5"):
        train(fast_config(f"network={five}"), QUIET)
    assert not (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").exists()  # no run folder for a failed start


@pytest.mark.slow
def test_two_process_gloo_ddp_run(tiny_network, digits_root, tmp_path):
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train",
               f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=2", "batch_size=16",
               "--dev", "--device", "cpu", "--no-progress"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = list((tmp_path / "train").iterdir())
    assert len(runs) == 1, "only rank 0 writes a run folder"
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "finished" and manifest["result"]["ranks_in_sync"]
    rows = list(csv.DictReader((runs[0] / "metrics.csv").open()))
    assert len(rows) == 2 and rows[-1]["step"] == "8"  # 100 dev images / 2 processes / batch 16 -> 4 steps per epoch
    assert read_checkpoint(runs[0] / "checkpoints" / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_decoding_per_batch_trains_exactly_like_in_memory(fast_config):
    split = ["data.train_split=dev", "data.val_split=dev", "epochs=1"]
    in_memory = train(fast_config(*split), QUIET)
    per_batch = train(fast_config(*split, "data.in_memory=false", "data.num_workers=0"), QUIET)
    assert_same_weights(final_weights(in_memory.run_dir), final_weights(per_batch.run_dir))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_met_while_training_names_list_and_line(fast_config, write_dataset, workers):
    import numpy as np

    images = {f"raw/{i}.png": np.full((8, 8), 20 * i, dtype=np.uint8) for i in range(10)}
    root = write_dataset(classes=[str(i) for i in range(10)], images=images,
                         lists={"train": "".join(f"raw/{i}.png {i}\n" for i in range(10)),
                                "val": "raw/0.png 0\nraw/1.png 1\n"})
    (root / "raw" / "7.png").write_bytes(b"broken")
    config = fast_config(f"data.dataset={root}", "data.in_memory=false", f"data.num_workers={workers}",
                         "batch_size=4")
    with pytest.raises(UserError) as excinfo:
        train(config, QUIET)
    message = str(excinfo.value)
    assert "lists/train.txt:8:" in message and "cannot decode raw/7.png" in message
    assert "Traceback" not in message
    manifest = json.loads(next((Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "failed" and "train.txt:8" in manifest["result"]["error"]
    skipped = train(fast_config(f"data.dataset={root}", "data.in_memory=false", "data.on_unreadable=skip",
                                "batch_size=4", "epochs=1"), QUIET)
    assert skipped.status == "finished"
    manifest = json.loads((skipped.run_dir / "manifest.json").read_text())
    assert [line.rsplit("/", 1)[-1] for line in manifest["result"]["unreadable"]["train"]] == ["train.txt:8"]

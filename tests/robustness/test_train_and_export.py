"""Bad inputs and faults for train, export, runs and pack: a one-line error naming the file, line or
key, exit status 2, no traceback, and nothing already written changed.

Each case runs the command's ``main`` in-process through ``run_main`` (as the entry
point does) against a copy of a trained run; the SIGKILL cases run real processes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from common.cli import run_main
from common.locks import exclusive
from common.paths import PROJECT_ROOT
from tests.commands import command_main


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (what must stay untouched; a run's lock file is not a result)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders if folder.exists() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert one byte (by default in the middle of the file: inside the weights)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def world(trained_run, tmp_path, monkeypatch):
    """A private copy of the trained run under this test's output folder, and its paths."""
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    run = output / "train" / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, run)
    network = tmp_path / "tiny.yaml"
    shutil.copy(trained_run.network_config, network)
    monkeypatch.chdir(tmp_path)
    return {"run": run, "network": network, "digits": trained_run.digits_root, "tmp": tmp_path,
            "model": Path(os.environ["IMAGEPIPE_MODEL"]), "output": output}


def train_args(w, *extra: str) -> list[str]:
    return [f"network={w['network']}", f"data.dataset={w['digits']}", "epochs=1", "batch_size=32",
            "data.train_split=dev", "data.val_split=dev", "--device", "cpu", "--no-progress", *extra]


def export_args(w, *extra: str) -> list[str]:
    return ["--run", str(w["run"]), "--network-config", str(w["network"]), "--parity-samples", "16", *extra]


def prepare_damaged_copy(w, name: str, keep_sidecar: bool) -> Path:
    copy = w["tmp"] / name
    shutil.copy(w["run"] / "checkpoints" / "best.pt", copy)
    if keep_sidecar:
        (w["tmp"] / f"{name}.sha256").write_text(
            (w["run"] / "checkpoints" / "best.pt.sha256").read_text().replace("best.pt", name))
    flip_byte(copy)
    return copy


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def other_run(w) -> Path:
    """A second run folder whose best.pt was written by the first run."""
    other = w["output"] / "train" / "other-20990101-000000"
    shutil.copytree(w["run"], other)
    return other / "checkpoints" / "best.pt"


def locked_resume(w) -> list[str]:
    w["lock"] = exclusive(w["run"] / ".lock", "run")
    w["lock"].__enter__()
    return ["--resume", str(w["run"]), "--device", "cpu"]


def deep_manifest(w) -> list[str]:
    (w["run"] / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    return ["show", str(w["run"])]


def space_file(w, text: str = "params:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n") -> str:
    return str(write(w["tmp"] / "space.yaml", text))


def sweep_args(w, *extra: str) -> list[str]:
    return ["--space", space_file(w), "--trials", "1", "--study", "s", *extra]


def replaced_after_packing(w) -> list[str]:
    """A private copy of the digits, packed for the tiny network; then one image replaced by another of the same
    size with its modification time restored (cp, then touch -r): size and mtime are what the pack recorded."""
    from common.lists import load_dataset, read_split
    from networks import load_network_config
    from train.data.packs import write_pack

    copy = w["tmp"] / "digits"
    shutil.copytree(w["digits"], copy)
    dataset = load_dataset(copy)
    write_pack(dataset, load_network_config(w["network"]).input, ["dev"])
    image, other = (dataset.image_path(sample) for sample in read_split(dataset, "dev")[:2])
    kept = image.stat()
    with open(image, "r+b") as stream:
        stream.write(other.read_bytes()[:kept.st_size].ljust(kept.st_size, b"\0"))
    os.utime(image, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    return train_args(w, f"data.dataset={copy}", "data.pack=require")


Case = tuple[str, str, Callable[[dict], list[str]], str]
CASES: list[Case] = [
    # train: config and command line
    ("train-unknown-key", "train", lambda w: train_args(w, "optim.lrr=1"), r"optim\.lrr.*Did you mean"),
    ("train-wrong-type", "train", lambda w: train_args(w, "epochs=abc"), r"epochs"),
    ("train-negative-lr", "train", lambda w: train_args(w, "optim.lr=-1"), r"optim\.lr: must be positive"),
    ("train-zero-epochs", "train", lambda w: train_args(w, "epochs=0"), r"epochs: must be >= 1"),
    ("train-bad-choice", "train", lambda w: train_args(w, "data.pack=sometimes"), r"data\.pack: 'sometimes'"),
    ("train-config-missing", "train", lambda w: ["--config", "nope.yaml"], r"nope\.yaml: training config not found"),
    ("train-config-python-tag", "train",
     lambda w: ["--config", str(write(w["tmp"] / "evil.yaml", "epochs: !!python/object/apply:os.system ['true']\n"))],
     r"evil\.yaml: not a valid YAML mapping"),
    ("train-config-not-mapping", "train", lambda w: ["--config", str(write(w["tmp"] / "list.yaml", "- 1\n- 2\n"))],
     r"list\.yaml: expected a mapping"),
    ("train-network-missing", "train", lambda w: train_args(w, "network=nope"), r"nope\.yaml: network config not found"),
    ("train-network-unknown-arch", "train",
     lambda w: train_args(w, f"network={write(w['tmp'] / 'odd.yaml', w['network'].read_text().replace('small_cnn', 'smol'))}"),
     r"unknown network 'smol'; registered"),
    ("train-timm-unknown-model", "train",
     lambda w: train_args(w, f"network={write(w['tmp'] / 'tm.yaml', w['network'].read_text().replace('small_cnn, params: {channels: [8, 16], dropout: 0.1}', 'timm, params: {model: resnet81}'))}"),
     r"'resnet81' is not a timm model; close matches"),
    ("train-class-count", "train",
     lambda w: train_args(w, f"network={write(w['tmp'] / 'five.yaml', w['network'].read_text().replace('num_classes: 10', 'num_classes: 5'))}"),
     r"classes\.txt has 10 classes but network config 'five' has num_classes 5"),
    ("train-dataset-missing", "train", lambda w: train_args(w, "data.dataset=/nonexistent/ds"),
     r"nonexistent/ds: data set folder not found"),
    ("train-split-missing", "train", lambda w: train_args(w, "data.train_split=nosuch"),
     r"no list file for split 'nosuch'; available"),
    ("train-init-missing", "train", lambda w: train_args(w, "init.weights=absent.pt"),
     r"init\.weights: 'absent\.pt' not found"),
    ("train-init-damaged-sidecar", "train",
     lambda w: train_args(w, f"init.weights={prepare_damaged_copy(w, 'init.pt', True)}"),
     r"init\.pt: sha256 .* does not match init\.pt\.sha256"),
    ("train-init-damaged-crc", "train",
     lambda w: train_args(w, f"init.weights={prepare_damaged_copy(w, 'bare.pt', False)}"),
     r"bare\.pt: damaged: its entry .* does not match its CRC-32"),
    ("train-init-pickled-code", "train",
     lambda w: (torch.save({"model": {"w": torch.zeros(1)}, "hook": print}, w["tmp"] / "code.pt"),
                train_args(w, f"init.weights={w['tmp'] / 'code.pt'}"))[1],
     r"code\.pt: refused by torch\.load\(weights_only=True\)"),
    ("train-init-matches-nothing", "train",
     lambda w: (torch.save({"encoder.w": torch.zeros(3)}, w["tmp"] / "foreign.pt"),
                train_args(w, f"init.weights={w['tmp'] / 'foreign.pt'}", "init.mode=partial"))[1],
     r"foreign\.pt: no key matches the network"),
    ("train-no-gpu", "train", lambda w: train_args(w, "--device", "cuda"), r"--device cuda: no CUDA GPU"),
    ("train-bad-name", "train", lambda w: train_args(w, "--name", "../escape"), r"--name '\.\./escape': use letters"),
    ("train-pack-required", "train", lambda w: train_args(w, "data.pack=require"), r"data\.pack=require: no pack in"),
    ("train-find-lr-range", "train", lambda w: train_args(w, "--find-lr", "--lr-min", "1", "--lr-max", "0.1"),
     r"--lr-min/--lr-max/--lr-steps: need 0 < lr_min < lr_max"),
    ("train-name-300-characters", "train", lambda w: train_args(w, "--name", "n" * 300),
     r"--name 'n+'\.\.\.: 300 bytes long; at most \d+ here"),
    ("train-pack-replaced-image", "train", replaced_after_packing,
     r"data\.pack=require: .*raw/\d/\d+\.png changed since it was packed \(its size, modification or change time, "
     r"or inode\)"),
    # resume
    ("resume-missing-run", "train", lambda w: ["--resume", "no-such-run"], r"no-such-run: not a run folder"),
    ("resume-damaged-last", "train",
     lambda w: (flip_byte(w["run"] / "checkpoints" / "last.pt"), ["--resume", str(w["run"]), "--device", "cpu"])[1],
     r"last\.pt: sha256 .* does not match last\.pt\.sha256"),
    ("resume-while-running", "train", locked_resume, r"is in use by pid \d+ on host \S+"),
    ("resume-completed", "train", lambda w: ["--resume", str(w["run"]), "--device", "cpu"],
     r"already completed 4 of 4 epochs; to train longer"),
    ("resume-changed-config", "train", lambda w: ["--resume", str(w["run"]), "optim.lr=0.5", "--device", "cpu"],
     r"--allow-change optim\.lr"),
    ("resume-broken-manifest", "train",
     lambda w: (write(w["run"] / "manifest.json", "{"), ["--resume", str(w["run"]), "epochs=5", "--allow-change",
                                                         "epochs", "--device", "cpu"])[1],
     r"manifest\.json: unreadable run manifest"),
    # export
    ("export-missing-run", "export", lambda w: ["--run", "no-such-run"], r"no-such-run: not a run folder"),
    ("export-damaged-checkpoint", "export",
     lambda w: (flip_byte(w["run"] / "checkpoints" / "best.pt"), export_args(w))[1],
     r"best\.pt: sha256 .* does not match best\.pt\.sha256"),
    ("export-checkpoint-of-another-run", "export", lambda w: ["--run", str(other_run(w).parent.parent),
                                                              "--network-config", str(w["network"])],
     r"was written by run '.*', not by 'other-20990101-000000'; .* --run"),
    ("export-checkpoint-missing", "export", lambda w: export_args(w, "--checkpoint", "gone.pt"),
     r"gone\.pt: checkpoint not found"),
    ("export-bad-name", "export", lambda w: export_args(w, "--name", "a/b"), r"--name 'a/b': a plain name, without '/'"),
    ("export-negative-tolerance", "export", lambda w: export_args(w, "--tolerance", "-1"), r"--tolerance must be >= 0"),
    ("export-zero-parity-samples", "export", lambda w: export_args(w, "--parity-samples", "0"),
     r"--parity-samples and --calibration-samples must be at least 1"),
    ("export-changed-shared-config", "export",
     lambda w: ["--run", str(w["run"]), "--network-config",
                str(write(w["tmp"] / "tiny2.yaml", w["network"].read_text().replace("dropout: 0.1", "dropout: 0.4")))],
     r"tiny2\.yaml \(hash \w+\) differs from the network config the checkpoint was trained with"),
    ("export-broken-run-config", "export",
     lambda w: (write(w["run"] / "config.yaml", "epochs: [unclosed\n"), export_args(w))[1],
     r"config\.yaml: not a valid YAML mapping"),
    ("export-broken-manifest", "export", lambda w: (write(w["run"] / "manifest.json", "[]"), export_args(w))[1],
     r"manifest\.json: expected a JSON object"),
    ("export-opset-1", "export", lambda w: export_args(w, "--opset", "1"),
     r"--opset 1: torch's exporter writes opsets 18\.\.\d+"),
    ("export-opset-999", "export", lambda w: export_args(w, "--opset", "999"),
     r"--opset 999: torch's exporter writes opsets 18\.\.\d+"),
    # sweep: storage, study name and search space, refused before any trial
    ("sweep-study-escapes", "sweep", lambda w: sweep_args(w, "--study", "../.."),
     r"--study '\.\./\.\.': a plain name"),
    ("sweep-storage-not-a-url", "sweep", lambda w: sweep_args(w, "--storage", "not-a-url"),
     r"--storage not-a-url: cannot open the study's database"),
    ("sweep-storage-driver-missing", "sweep", lambda w: sweep_args(w, "--storage", "mysql://me:secret@db/sweeps"),
     r"--storage mysql://me:\*\*\*@db/sweeps: the database driver is not installed"),
    ("sweep-space-later-value", "sweep",
     lambda w: ["--space", space_file(w, "params:\n  optim.momentum: {type: float, low: 0.5, high: 1.5}\n"),
                "--study", "s"],
     r"space\.yaml: params\.optim\.momentum: a trial could take 1\.5, which the training config refuses "
     r"\(optim\.momentum: must be in \[0, 1\)"),
    # runs and pack
    ("runs-show-missing", "runs", lambda w: ["show", "no-such-run"], r"no-such-run: not a run folder"),
    ("runs-show-deep-manifest", "runs", deep_manifest,
     r"manifest\.json: unreadable run manifest \(nested more than 64 deep"),
    ("pack-network-missing", "pack", lambda w: ["--dataset", str(w["digits"]), "--network", "nope"],
     r"nope\.yaml: network config not found"),
    ("pack-split-missing", "pack", lambda w: ["--dataset", str(w["digits"]), "--network", str(w["network"]),
                                              "--splits", "nosuch"], r"--splits: no list file for \['nosuch'\]"),
    ("pack-dataset-missing", "pack", lambda w: ["--dataset", "/nonexistent/ds", "--network", str(w["network"])],
     r"nonexistent/ds: data set folder not found"),
]


def command(name: str) -> Callable:
    return command_main(name)


@pytest.mark.parametrize(("case", "program", "arguments", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_error_and_changes_nothing(world, capsys, case, program, arguments, message):
    untouched = snapshot(world["model"])
    runs_before = {p.name for p in (world["output"] / "train").iterdir()}
    argv = arguments(world)
    before = snapshot(world["run"])
    try:
        code = run_main(command(program), argv)
    finally:
        if "lock" in world:
            world["lock"].__exit__(None, None, None)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert re.search(message, err), err
    assert snapshot(world["run"]) == before, "the run folder changed"
    assert snapshot(world["model"]) == untouched, "model/ changed"
    new_runs = {p.name for p in (world["output"] / "train").iterdir()} - runs_before
    assert new_runs <= {"other-20990101-000000"} or all(
        "failed" in (world["output"] / "train" / n / "manifest.json").read_text() for n in new_runs)


@pytest.mark.slow
def test_a_nan_validation_loss_ends_the_run_as_diverged(world, capsys, monkeypatch):
    """A validation loss that is NaN every epoch (the training loss finite) used to end as finished, exit 0."""
    from train.loop.trainer import Trainer

    validate = Trainer._validate  # the validation pass itself: the NaN guard that follows it is under test
    monkeypatch.setattr(Trainer, "_validate", lambda self, each: {**validate(self, each), "val/loss": float("nan")})
    code = run_main(command("train"), train_args(world, "epochs=3", "--name", "nan"))
    err = capsys.readouterr().err
    (run,) = (world["output"] / "train").glob("nan-*")
    assert code == 1 and "Traceback" not in err
    assert "training diverged: the validation loss is nan after epoch 1" in (run / "log.txt").read_text()
    assert json.loads((run / "manifest.json").read_text())["status"] == "diverged"
    assert not (run / "checkpoints" / "best.pt").exists()


def tiny_pack_args(w) -> list[str]:
    copy = w["tmp"] / "digits"
    shutil.copytree(w["digits"], copy)
    return ["--dataset", str(copy), "--network", str(w["network"]), "--splits", "dev", "--no-progress"]


@pytest.mark.slow
def test_a_full_disk_while_packing_is_one_line_and_leaves_no_staging_folder(world, capsys, monkeypatch):
    argv = tiny_pack_args(world)

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code = run_main(command("pack"), argv)
    err = capsys.readouterr().err
    packs = world["tmp"] / "digits" / "packs"
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: {packs / 'L-8x8-bilinear'}/dev.images.npy: No space left on device"), err
    assert not packs.exists() or not list(packs.iterdir())  # no pack, no staging folder


@pytest.mark.slow
def test_a_disk_without_room_for_the_pack_is_refused_before_decoding(world, capsys, monkeypatch):
    argv = tiny_pack_args(world)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100))
    code = run_main(command("pack"), argv)
    err = capsys.readouterr().err
    packs = world["tmp"] / "digits" / "packs"
    assert code == 2 and "Traceback" not in err
    assert err == (f"error: {packs / 'L-8x8-bilinear'}: the pack needs about 0.0 MB but the disk has 0.0 MB free; "
                   "free some space or pack fewer splits (--splits)\n"), err
    assert not packs.exists() or not list(packs.iterdir())


def test_runs_lists_every_readable_run_and_marks_the_broken_one(world, capsys):
    broken = world["output"] / "train" / "broken-20990101-000000"
    broken.mkdir()
    (broken / "config.yaml").write_text("epochs: [\n")
    assert run_main(command("runs"), []) == 0
    out = capsys.readouterr().out
    assert world["run"].name in out and "finished" in out
    assert "unreadable: broken-20990101-000000:" in out and "config.yaml" in out


@pytest.mark.slow
def test_a_damaged_model_is_refused_by_evaluation(world, capsys):
    from evaluate.__main__ import main as evaluate_main

    assert run_main(command("export"), export_args(world, "--name", "m")) == 0
    flip_byte(world["model"] / "m.onnx", offset=-50)
    code = run_main(evaluate_main, ["--model", str(world["model"] / "m.onnx"), "--list",
                                    str(world["digits"] / "lists" / "dev.txt"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "m.onnx: sha256" in err and "does not match m.onnx.sha256" in err
    assert not (world["output"] / "eval").exists() or not list((world["output"] / "eval").iterdir())


def run_until_killed(args: list[str], env: dict[str, str], delay: float, after: Callable[[], bool] = lambda: True
                     ) -> int:
    """Run ``python -m <args>``; once ``after()`` holds (polled), wait ``delay`` seconds and SIGKILL it."""
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not after() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    return process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_train_killed_at_a_random_moment_resumes_or_says_why(world, seed):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", *train_args(world, "epochs=60", "--name", "killed")]
    started = lambda: bool(list((world["output"] / "train").glob("killed-*/manifest.json")))  # noqa: E731
    run_until_killed(args, env, random.Random(seed).uniform(0.0, 4.0), after=started)
    (run,) = list((world["output"] / "train").glob("killed-*"))
    resumed = subprocess.run([sys.executable, "-m", "train", "--resume", str(run), "--device", "cpu",
                              "--no-progress"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
    assert "Traceback" not in resumed.stderr
    if resumed.returncode == 0:
        assert '"status": "finished"' in (run / "manifest.json").read_text()
    else:  # killed before the first epoch ended, or just after the last one
        assert resumed.returncode == 2 and ("last.pt: checkpoint not found" in resumed.stderr
                                            or "already completed 60 of 60 epochs" in resumed.stderr), resumed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_export_killed_at_a_random_moment_leaves_no_model_and_no_debris(world, seed):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_until_killed(["deploy", *export_args(world, "--name", "k")], env, random.Random(seed).uniform(1.0, 8.0))
    left = sorted(p.name for p in world["model"].iterdir()) if world["model"].exists() else []
    finished = left == ["k.json", "k.onnx", "k.onnx.sha256"]
    assert finished or not [n for n in left if not n.startswith(".")], left  # all of the model, or none of it
    again = subprocess.run([sys.executable, "-m", "deploy", *export_args(world, "--name", "k2")], cwd=PROJECT_ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert not [p.name for p in world["model"].iterdir() if p.name.startswith(".")]  # the dead one's staging is gone


def test_the_table_holds_the_bad_inputs_docs_robustness_md_counts():
    doc = (PROJECT_ROOT / "docs" / "robustness.md").read_text()
    stated = re.search(r"test_train_and_export\.py`.*?a table of (\d+) bad inputs", doc, re.S)
    assert stated and int(stated.group(1)) == len(CASES)

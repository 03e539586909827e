"""The one publisher: staged writes appear whole or not at all, and leave no debris behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.errors import UserError
from common.provenance import host_name
from common.staging import remove_stale_staging, staged


def entries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out"
    with staged(target) as stage:
        (stage.path / "a.txt").write_text("a")
        assert not target.exists() and stage.path.parent == tmp_path and stage.path.name.startswith(".out.staging-")
    assert entries(tmp_path) == ["out"] and (target / "a.txt").read_text() == "a"
    with pytest.raises(RuntimeError):
        with staged(tmp_path / "failed") as stage:
            (stage.path / "half.txt").write_text("half")
            raise RuntimeError("killed halfway")
    assert entries(tmp_path) == ["out"]  # neither the target nor the staging folder


def test_an_existing_target_is_refused_replaced_or_kept_as_a_backup(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(UserError, match=r"out already exists; pass --overwrite"):
        with staged(target, hint="pass --overwrite"):
            pytest.fail("the block must not run")
    assert entries(target) == ["old.txt"]
    with staged(target, exists="replace") as stage:
        (stage.path / "new.txt").write_text("new")
    assert entries(target) == ["new.txt"] and entries(tmp_path) == ["out"]
    with staged(target, exists="backup") as stage:
        (stage.path / "newer.txt").write_text("newer")
    assert entries(target) == ["newer.txt"] and stage.backup is not None
    assert entries(stage.backup) == ["new.txt"] and stage.backup.name.startswith("out.replaced-")


def test_a_cancelled_stage_publishes_nothing(tmp_path):
    with staged(tmp_path / "out") as stage:
        (stage.path / "a.txt").write_text("a")
        stage.cancel()
    assert entries(tmp_path) == []


def test_a_file_set_lands_in_order_in_a_shared_folder(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "other.onnx").write_text("someone else's")
    with staged(folder, files=["m.json", "m.onnx"]) as stage:
        (stage.path / "m.json").write_text("card")
        (stage.path / "m.onnx").write_text("model")
    assert entries(folder) == ["m.json", "m.onnx", "other.onnx"]
    with pytest.raises(UserError, match=r"m\.json already exists"):
        with staged(folder, files=["m.json", "m.onnx"]):
            pass
    with staged(folder, exists="replace", files=["m.json", "thumbs"]) as stage:
        (stage.path / "m.json").write_text("card 2")
        (stage.path / "thumbs").mkdir()
    with staged(folder, exists="replace", files=[]) as stage:
        (stage.path / "thumbs").mkdir()
        (stage.path / "thumbs" / "1.png").write_text("png")
        stage.files = ["thumbs"]  # decided once the block knows what it wrote
    assert entries(folder) == ["m.json", "m.onnx", "other.onnx", "thumbs"] and entries(folder / "thumbs") == ["1.png"]
    assert (folder / "m.json").read_text() == "card 2"


def test_staging_of_dead_processes_is_removed_and_live_or_foreign_ones_kept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".eval.staging-{host_name()}-{int(finished.stdout)}-20261125-101010"
    live = tmp_path / f".eval.staging-{host_name()}-{os.getpid()}-20261125-101010"
    foreign = tmp_path / f".eval.staging-some-other-host-{int(finished.stdout)}-20261125-101010"
    aside = tmp_path / f".eval.replaced-{host_name()}-{int(finished.stdout)}-20261125-101010"
    half_written = tmp_path / f".m.onnx.tmp-{host_name()}-{int(finished.stdout)}.k2j3x9.tmp"  # atomic_write's
    half_written.write_bytes(b"half")
    for folder in (dead, live, foreign, aside):
        folder.mkdir()
        (folder / "predictions.csv").write_text("half")
    with staged(tmp_path / "eval") as stage:
        (stage.path / "done.txt").write_text("done")
    assert not dead.exists() and not aside.exists() and not half_written.exists()
    assert live.exists() and foreign.exists()
    assert remove_stale_staging(tmp_path) == []


def test_a_full_disk_publishes_nothing_and_names_the_file_as_published(tmp_path, monkeypatch):
    import errno

    from common.files import write_json

    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    writes = []

    def fsync(descriptor):
        writes.append(descriptor)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as excinfo:
        with staged(target, exists="replace") as stage:
            write_json(stage.path / "a.json", {})
            write_json(stage.path / "sub" / "b.json", {})
    assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(target / "sub" / "b.json")
    assert entries(tmp_path) == ["out"] and entries(target) == ["old.txt"]  # no staging folder, nothing replaced

"""runs show names the list version a run read, looked up by the sha256 its manifest recorded (torch-free)."""

from __future__ import annotations

from common.files import file_sha256
from common.list_versions import record_noticed
from common.run_folder import RunManifest
from tests.datatools.small_sets import write_set
from train.experiments.runs import list_lines


def test_runs_show_names_each_lists_version_even_one_recorded_after_the_run(tmp_path):
    root = write_set(tmp_path / "ds")
    train, val = root / "lists" / "train.txt", root / "lists" / "val.txt"
    old = file_sha256(train)
    manifest = RunManifest(run="r", status="finished", started="", data={"lists": {
        "train": {"path": str(train), "sha256": old, "samples": 18, "role": "train"},
        "cv3-s0-v1-f1-train": {"path": str(root / "lists" / "cv3-s0-v1-f1-train.txt"), "sha256": "0" * 64,
                               "samples": 12, "role": "train"},
        "val": {"path": str(val), "sha256": "f" * 64, "samples": 6, "role": "val", "version": 4}}})
    train.write_text(train.read_text() + "raw/cat/7.png 1\n")
    record_noticed(root, "a hand edit after the run")
    assert list_lines(manifest) == [
        f"  train: train v1, 18 samples ({train})",
        f"  cv3-s0-v1-f1-train: cv3-s0-v1-f1-train (drawn from train v1), 12 samples "
        f"({root / 'lists' / 'cv3-s0-v1-f1-train.txt'})",
        f"  val: val v4, 6 samples ({val})"]  # the history lost it: the version recorded at training

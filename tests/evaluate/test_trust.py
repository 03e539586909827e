"""Trust roots: a folder named in a received file is followed only below the data folder or a folder the user
named (the end-to-end cases, with forged files, are in tests/robustness/test_evaluate_and_data.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from common.lists import resolve_image
from evaluate.trust import image_homes, is_trusted, recorded_data_set


def test_only_the_data_folder_and_named_folders_are_trusted(tmp_path):
    data = Path(os.environ["IMAGEPIPE_DATA"])
    (data / "ds").mkdir(parents=True)
    assert is_trusted(data / "ds", []) and not is_trusted(tmp_path, []) and is_trusted(tmp_path / "x", [tmp_path])
    assert not is_trusted(data / ".." / "elsewhere", [])  # resolved first


def test_a_recorded_root_nobody_named_is_ignored_with_a_warning(tmp_path, caplog):
    assert recorded_data_set("/", "evaluation.json", []) is None
    assert "names the data set folder /, which is not below the data folder" in caplog.text
    assert recorded_data_set(str(tmp_path), "evaluation.json", [tmp_path]) == tmp_path
    assert recorded_data_set(str(tmp_path / "gone"), "evaluation.json", [tmp_path]) is None


def test_a_forged_link_source_is_not_followed(tmp_path, caplog):
    root, outside = tmp_path / "ds", tmp_path / "outside"
    (root / "raw").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "raw" / "link.png").symlink_to(outside / "secret.png")
    (root / "prepare.json").write_text(json.dumps({"link": "symlink", "source": str(outside)}))
    homes = image_homes(root, [root])
    assert homes == (root.resolve(),) and "prepare.json names" in caplog.text
    assert resolve_image(root, "raw/link.png", homes) is None
    trusted = image_homes(root, [root, outside])
    assert resolve_image(root, "raw/link.png", trusted) == (outside / "secret.png").resolve()

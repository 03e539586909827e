"""Bounds on what prediction walks and starts: globs through folder links, thread and worker counts."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from common.limits import DECODE_THREADS_PER_CORE, cores
from predict.inputs import gather_inputs
from predict.run import PredictOptions, predict


def photos_with_links(root: Path, mixed: Path) -> Path:
    """Three images in ``root/shots`` (one in a subfolder) and folder links back up: two to the folder, one to
    itself."""
    images = sorted((mixed / "raw" / "3").glob("*.png"))[:3]
    (root / "shots" / "deep").mkdir(parents=True)
    for index, image in enumerate(images):
        shutil.copy(image, root / "shots" / ("deep" if index == 2 else "") / f"{index}.png")
    os.symlink(root / "shots", root / "shots" / "up")
    os.symlink(root / "shots", root / "shots" / "deep" / "again")
    os.symlink(root / "shots" / "deep", root / "shots" / "deep" / "self")
    return root / "shots"


def test_predict_glob_through_folder_links_ends_and_takes_each_image_once(mixed, tmp_path):
    shots = photos_with_links(tmp_path, mixed)
    inputs = gather_inputs([f"{shots}/**/*.png"])  # glob.glob would never end here
    assert [Path(p).relative_to(shots).as_posix() for p in inputs.paths] == ["0.png", "1.png", "deep/2.png"]
    assert len(gather_inputs([f"{shots}/deep/**/*.png"]).paths) == 3  # a link leads out: its files, once


def test_predict_threads_and_workers_beyond_the_cores_are_capped_with_a_notice(models, mixed, caplog):
    caplog.set_level(logging.WARNING)
    result = predict(PredictOptions(inputs=(str(mixed / "raw" / "3"),), model=models.model, name="capped",
                                    threads=10_000, workers=10_000, progress=False))
    assert result.record.images > 0
    assert f"--threads 10000: using {cores()}" in caplog.text
    assert f"--workers 10000: using {DECODE_THREADS_PER_CORE * cores()}" in caplog.text

"""What a run tells its user while it trains: the data check, the time estimate, a shortcut named at the start."""

from __future__ import annotations

import pytest
from PIL import Image

from train.run import RunOptions, train


@pytest.mark.slow
def test_the_run_log_has_the_data_check_and_the_time_estimate(fast_config):
    result = train(fast_config("epochs=3"), RunOptions(progress=False, device="cpu", dev=True))
    log = (result.run_dir / "log.txt").read_text()
    assert "data check (headers of 100 of 100 dev images): no shortcut" in log
    (estimate,) = [line for line in log.splitlines() if "time estimate:" in line]
    assert "per epoch (epoch 1, with validation): about" in estimate and "for 3 epochs" in estimate
    assert log.index("epoch 1/3") < log.index("time estimate:") < log.index("epoch 2/3")


@pytest.mark.slow
def test_a_shortcut_is_named_at_the_start_of_training(fast_config, digits_root, tmp_path):
    copy = tmp_path / "digits"
    lines = []
    for line in (digits_root / "lists" / "dev.txt").read_text().splitlines():
        path, label = line.rsplit(maxsplit=1) if not line.startswith("#") else (None, None)
        if path is None:
            continue
        target = copy / (path.replace(".png", ".jpg") if label == "3" else path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(digits_root / path).save(target)  # class 3 becomes all JPEG, the rest stay PNG
        lines.append(f"{target.relative_to(copy).as_posix()} {label}\n")
    (copy / "lists").mkdir()
    (copy / "lists" / "dev.txt").write_text("".join(lines))
    (copy / "classes.txt").write_text((digits_root / "classes.txt").read_text())
    result = train(fast_config("epochs=1", f"data.dataset={copy}"), RunOptions(progress=False, device="cpu", dev=True))
    log = (result.run_dir / "log.txt").read_text()
    assert "1 warning(s): shortcut: all 10 files of class '3' have format JPEG, against 0%" in log

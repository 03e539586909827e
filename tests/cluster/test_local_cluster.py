"""``python -m tools.slurm_local start|stop``, as docs/clusters.md tells a user to try the recipes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from tests.cluster.conftest import require_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def daemons_of(folder: Path) -> list[str]:
    """The command lines of running processes that name ``folder``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = entry.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in line and "slurm_local" not in line:
            found.append(line)
    return found


def test_the_cluster_starts_takes_a_job_and_stops_with_nothing_left_running():
    require_slurm()
    folder = Path(tempfile.mkdtemp(prefix="imagepipe-slurm-"))
    tool = [sys.executable, "-m", "tools.slurm_local"]
    try:
        started = subprocess.run([*tool, "start", str(folder)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 0, started.stderr
        assert started.stdout == f"export SLURM_CONF={folder / 'slurm.conf'}\n"
        assert len(daemons_of(folder)) == 3  # munged, slurmctld, slurmd
        env = {"SLURM_CONF": str(folder / "slurm.conf"), "PATH": "/usr/bin:/bin:/usr/sbin"}
        ran = subprocess.run(["srun", "--ntasks=1", "echo", "ran on the local cluster"], capture_output=True,
                             text=True, env=env, timeout=60)
        assert ran.stdout == "ran on the local cluster\n", ran.stderr
    finally:
        stopped = subprocess.run([*tool, "stop", str(folder)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                 timeout=120)
        left = daemons_of(folder)
        shutil.rmtree(folder, ignore_errors=True)
    assert stopped.returncode == 0 and left == []

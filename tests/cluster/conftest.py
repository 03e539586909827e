"""A single-node Slurm cluster for the tests of this folder (:mod:`tools.slurm_local`), started once per test module and stopped after it.

Debian's ``slurm-wlm`` and ``munge`` provide the daemons; ``.ci/run`` installs them and
sets ``IMAGEPIPE_REQUIRE_SLURM``, so CI fails instead of skipping when they are missing
(on a laptop the tests skip, saying how to get them). The daemons are stopped by their
process IDs when the module's tests end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.slurm_local import INSTALL_HINT, LocalSlurm, missing


def require_slurm() -> None:
    """Skip (fail under ``IMAGEPIPE_REQUIRE_SLURM``) where a local cluster cannot start, saying why."""
    problem = None
    if missing():
        problem = f"no local Slurm: {', '.join(missing())} not found; {INSTALL_HINT} (.ci/run does)"
    elif os.geteuid() != 0:
        problem = "a local Slurm needs root (slurmd starts the jobs' processes); run the slurm tests as root"
    if problem:
        if os.environ.get("IMAGEPIPE_REQUIRE_SLURM"):
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalSlurm]:
    """The running cluster; its ``SLURM_CONF`` is set for this process and the commands it starts."""
    require_slurm()
    folder = Path(tempfile.mkdtemp(prefix="imagepipe-slurm-"))  # short: munge's socket path has a length limit
    local = LocalSlurm(folder)
    previous = os.environ.get("SLURM_CONF")
    try:
        local.start()
        os.environ["SLURM_CONF"] = local.env["SLURM_CONF"]
        yield local
    finally:
        local.stop()
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(folder, ignore_errors=True)

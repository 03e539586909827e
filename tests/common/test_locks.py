"""Run locks: a second holder is refused with the first one's name; a dead holder never blocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from common.errors import UserError
from common.locks import exclusive, holder
from common.paths import PROJECT_ROOT
from common.provenance import host_name


def test_a_held_lock_is_refused_naming_its_holder(tmp_path):
    lock = tmp_path / ".lock"
    assert holder(lock) is None
    with exclusive(lock, "run x"):
        found = holder(lock)
        assert found["pid"] == os.getpid() and found["host"] == host_name()
        with pytest.raises(UserError, match=rf"run x is in use by pid {os.getpid()} on host {host_name()} \(since "):
            with exclusive(lock, "run x"):
                pytest.fail("two holders")
    assert holder(lock) is None
    with exclusive(lock, "run x"):  # free again once released
        pass


def test_the_lock_of_a_killed_process_is_free(tmp_path):
    lock = tmp_path / ".lock"
    code = (f"from common.locks import exclusive\nimport time\nwith exclusive(__import__('pathlib').Path({str(lock)!r}), "
            "'r'):\n    print('held', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    assert holder(lock)["pid"] == process.pid
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while holder(lock) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder(lock) is None
    with exclusive(lock, "r"):
        pass

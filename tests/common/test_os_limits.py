"""An operating-system limit met anywhere in a command is one line saying which and what to do, exit status 1."""

from __future__ import annotations

import errno

import pytest

from common.cli import run_main
from common.limits import os_limit


@pytest.mark.parametrize("raised, said", [
    (OSError(errno.EMFILE, "Too many open files", "/data/x.png"), "/data/x.png: too many open files for this "
                                                                   "process (raise it with `ulimit -n`"),
    (OSError(errno.EAGAIN, "Resource temporarily unavailable"), "no more processes or threads may start"),
    (RuntimeError("can't start new thread"), "no more processes or threads may start (raise `ulimit -u`"),
    (MemoryError(), "not enough memory"),
    (OSError(errno.ELOOP, "Too many levels of symbolic links", "out/loop"), "out/loop: too many levels of symbolic"),
])
def test_a_limit_is_one_line_and_exit_status_1(raised, said, capsys):
    def main(argv):
        raise raised

    assert run_main(main, []) == 1
    err = capsys.readouterr().err
    assert err == f"error: {os_limit(raised)}\n" and said in err


def test_other_errors_keep_their_traceback():
    def main(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_main(main, [])

"""``pipenv run bench studio --quick`` runs: a studio server, watched and unwatched runs, the runs table, memory."""

from __future__ import annotations

import pytest

from bench import studio


@pytest.mark.slow
def test_quick_mode_runs(capsys):
    returned = studio.main(1, quick=True)  # its figures mean nothing: only that every part ran to its end
    out = capsys.readouterr().out
    assert returned in (0, 1)
    assert "events/page" in out and "unwatched / watched, training time" in out
    assert "cold (cache emptied)" in out and "warm (cached)" in out
    assert "slope after" in out and "! a page" not in out

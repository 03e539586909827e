"""The one exception type for mistakes a user can fix, and its form for files with many problems."""

from __future__ import annotations

from collections.abc import Sequence

MAX_REPORTED = 20
"""How many problems a :class:`FileProblems` message spells out before summarising."""


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a command-line value).

    Entry points print its message (which names the file, line or key and what to
    do) without a traceback and exit with status 2. Anything else that escapes is a
    bug and keeps its traceback.
    """


class FileProblems(UserError):
    """Every problem found in one or more files, reported at once.

    The message spells out the first :data:`MAX_REPORTED` problems and counts the rest.

    Args:
        problems: One ``"<file>:<line>: <what is wrong>"`` string per problem.
        files: What was read, for the message's head (e.g. ``the data set files``).

    Attributes:
        problems: As given.
    """

    def __init__(self, problems: Sequence[str], files: str):
        self.problems = list(problems)
        shown = self.problems[:MAX_REPORTED]
        message = "\n  ".join(shown)
        if len(self.problems) > len(shown):
            message += f"\n  ... and {len(self.problems) - len(shown)} more problem(s)"
        head = "1 problem" if len(self.problems) == 1 else f"{len(self.problems)} problems"
        super().__init__(f"{head} in {files}:\n  {message}")

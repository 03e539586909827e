"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a command-line value).

    Entry points print its message (which names the file, line or key and what to
    do) without a traceback and exit with status 2. Anything else that escapes is a
    bug and keeps its traceback.
    """

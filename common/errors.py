"""The one exception type for mistakes a user can fix: the CLI prints it on one line, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a TOML key, a flag). Printed without a traceback.

    The message must name what to change: the file, the key or the flag. It lives in the floor
    package so that a leaf reading a user's file (students reading training data) can raise
    it too, instead of a second message format for the same mistake.
    """

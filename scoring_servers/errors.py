"""The start-up errors both scoring servers share; each server's own `errors` module adds its
kinds, and only its `__main__` turns them into exit codes. Python 3.8+, standard library only.
"""

from __future__ import annotations

EXIT_USAGE = 2  # bad arguments or environment: fix the command line, retrying will not help


class ScoringServerError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ScoringServerError):
    """A bad command line or environment variable."""

    exit_code = EXIT_USAGE

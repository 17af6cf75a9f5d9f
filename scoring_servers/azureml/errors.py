"""The scoring server's errors; only `__main__` turns them into exit codes."""

from __future__ import annotations

EXIT_USAGE = 2  # bad arguments or environment: fix the command line, retrying will not help
EXIT_SCRIPT_FAILED = 3  # the entry script failed to import, lacks init()/run(), or init() raised


class ScoringServerError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ScoringServerError):
    """A bad command line or environment variable."""

    exit_code = EXIT_USAGE


class ScriptError(ScoringServerError):
    """The scoring script could not be started; the supervisor backs off before retrying."""

    exit_code = EXIT_SCRIPT_FAILED

"""The scoring server's errors; only `__main__` turns them into exit codes."""

from __future__ import annotations

from scoring_servers.errors import EXIT_USAGE, ScoringServerError, UsageError

__all__ = ["EXIT_SCRIPT_FAILED", "EXIT_USAGE", "ScoringServerError", "ScriptError", "UsageError"]

EXIT_SCRIPT_FAILED = 3  # the entry script failed to import, lacks init()/run(), or init() raised


class ScriptError(ScoringServerError):
    """The scoring script could not be started; the supervisor backs off before retrying."""

    exit_code = EXIT_SCRIPT_FAILED

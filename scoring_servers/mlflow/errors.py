"""The server's errors: start-up errors become exit codes in `__main__`, client errors 4xx."""

from __future__ import annotations

from scoring_servers.errors import EXIT_USAGE, ScoringServerError, UsageError

__all__ = ["EXIT_MODEL_FAILED", "EXIT_USAGE", "ClientError", "ModelLoadError",
           "ScoringServerError", "UsageError"]

EXIT_MODEL_FAILED = 3  # the model could not be loaded (missing flavour package, bad files)


class ModelLoadError(ScoringServerError):
    """The model could not be loaded; the supervisor backs off before retrying (as for a
    scoring script whose init() failed: same exit code as the azureml server)."""

    exit_code = EXIT_MODEL_FAILED


class ClientError(Exception):
    """A request the server cannot score because of its content: answered 4xx, never 500."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

"""The control plane's one error hierarchy.

Every user-facing failure is a `ScoregateError` with a message a person can act on.
The admin API maps each class to its HTTP status (`status`); the CLI prints `str(error)`
on one line and exits non-zero. Nothing else turns errors into exit codes.
"""

from __future__ import annotations

import reprlib

ECHO_LIMIT = 200  # characters of a client's value an error message repeats back
_ECHO = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_ECHO.maxlevel = 3
_ECHO.maxdict = _ECHO.maxlist = _ECHO.maxtuple = _ECHO.maxset = 8
_ECHO.maxstring = _ECHO.maxother = _ECHO.maxlong = ECHO_LIMIT


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for an error message, at most `limit` characters (then "…"): a client's
    10 MB value must not come back as a 10 MB message, and a deeply nested one must not
    raise RecursionError (a 500) while its message is written. Nesting beyond 3 levels shows
    as "{...}"."""
    return clip(_ECHO.repr(value), limit)


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """Text (a name, a list of names) a client sent, cut to `limit` characters with "…"."""
    return text if len(text) <= limit else text[:limit] + "…"


class ScoregateError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ScoregateError):
    """A YAML file that cannot be used: names the file, the key and (when known) the line."""

    def __init__(self, file: str, key: str | None, message: str, line: int | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        text = f"{where}: {message}" if key is None else f"{where}: key '{key}': {message}"
        super().__init__(text)
        self.file = file
        self.key = key
        self.line = line


class ValidationError(ScoregateError):
    """A change that breaks one of Azure ML's rules; `rule` names the rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class NotFound(ScoregateError):
    status = 404


class Conflict(ScoregateError):
    """Creating what exists already (update it instead), or deleting what is in use."""

    status = 409


class PayloadTooLarge(ScoregateError):
    """An admin request body above the admin API's cap (`admin.app.MAX_ADMIN_BODY_BYTES`)."""

    status = 413


class PreconditionFailed(ScoregateError):
    """An update whose If-Match names a version that is no longer current."""

    status = 412


class OperationFailed(ScoregateError):
    """A deployment's create or update ended `Failed`: the message is one line, `details`
    (the instance log's last lines) follow it on their own lines."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class SchemaTooNew(ScoregateError):
    """The state database was written by a newer scoregate: reading it could lose what it
    added, so the store refuses to open it (`serve` prints the message and exits 1)."""


class StateUnavailable(ScoregateError):
    """The state store cannot answer now: another process holds its lock past the bounded
    wait ("state store busy"), or the state folder is read-only or failing; retry later."""

    status = 503


class StateFull(StateUnavailable):
    """The state folder's disk (or a file size limit) is full: nothing more can be stored."""

    status = 507


class StateCorrupt(ScoregateError):
    """`state.db` is not a readable SQLite database: `serve` stops with a hint."""

    status = 500

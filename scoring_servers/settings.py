"""The settings both scoring servers read alike: the socket flags' bounds and the environment
variables Azure ML defines for every server (as azureml-inference-server-http reads them).
Each server's own `settings` module builds its `ServerSettings` with these.
Python 3.8+, standard library only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from scoring_servers.batching import BatchSettings, parse_batching
from scoring_servers.errors import UsageError


def check_socket_flags(fd: int | None, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    if fd is not None and fd < 0:
        raise UsageError(f"--fd must be a non-negative file descriptor, got {fd}")


def worker_count(environ: Mapping[str, str]) -> int:
    """`WORKER_COUNT` (default 1)."""
    text = environ.get("WORKER_COUNT", "")
    if not text.strip():
        return 1
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"WORKER_COUNT must be a whole number, got {text!r}") from None
    if count < 1:
        raise UsageError(f"WORKER_COUNT must be at least 1, got {count}")
    return count


def log_level(environ: Mapping[str, str]) -> int:
    """`AZUREML_LOG_LEVEL` (default INFO): a level name or number."""
    text = environ.get("AZUREML_LOG_LEVEL", "")
    name = text.strip().upper() or "INFO"
    if name.isdigit():
        return int(name)
    level = logging.getLevelName(name)  # an int for a known name (3.8+, unlike the mapping)
    if not isinstance(level, int):
        raise UsageError(
            f"AZUREML_LOG_LEVEL {text!r} is not a logging level "
            "(DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)"
        )
    return level


def scoring_timeout_s(environ: Mapping[str, str]) -> float | None:
    """`SCORING_TIMEOUT_MS` (optional), in seconds."""
    text = environ.get("SCORING_TIMEOUT_MS", "")
    if not text.strip():
        return None
    try:
        millis = int(text)
    except ValueError:
        raise UsageError(
            f"SCORING_TIMEOUT_MS must be a whole number of milliseconds, got {text!r}") from None
    if millis <= 0:
        raise UsageError(f"SCORING_TIMEOUT_MS must be positive, got {millis}")
    return millis / 1000.0


def batching(environ: Mapping[str, str]) -> BatchSettings | None:
    """`SCOREGATE_BATCHING` (optional, scoregate's): see scoring_servers/batching.py."""
    try:
        return parse_batching(environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

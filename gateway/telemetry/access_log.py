"""Access log: one structlog line per request (mirror copies too), JSON lines or console.

Kept cheap because it is on in the benchmark: a filtering bound logger cached on first use,
orjson rendering, and one `os.write` per line (no Python-level lock or flush). Only fields
listed in `AccessRecord` are logged, so keys, tokens and Authorization never appear.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

FORMATS = ("json", "console")
_LINE = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE  # "...Z" as structlog's lines, then "\n"


class FdLogger:
    """A structlog logger writing each rendered line to a file descriptor in one syscall."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def msg(self, message: str | bytes) -> None:
        data = message.encode("utf-8", "replace") if isinstance(message, str) else message
        os.write(self.fd, data + b"\n")

    info = warning = error = debug = critical = exception = log = msg


def configure_logging(fmt: str = "json", fd: int | None = None) -> None:
    """Set up structlog for the whole process: JSON lines for machines, console for people."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    target = sys.stdout.fileno() if fd is None else fd
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *args: FdLogger(target),
        cache_logger_on_first_use=True,
    )


@dataclass(slots=True)
class AccessRecord:
    """One request's line, built per request: not frozen, as a frozen dataclass's __init__
    (object.__setattr__ per field) costs ~1.2 µs more here, and nothing keeps or shares it."""

    request_id: str
    client_request_id: str | None
    endpoint: str
    deployment: str
    role: str
    status: int
    model_status: int | None
    latency_ms: float
    request_bytes: int
    response_bytes: int


def _json_fd() -> int | None:
    """The descriptor `configure_logging("json")` writes to, or None (then use structlog)."""
    config = structlog.get_config()
    factory = config["logger_factory"]
    renderer = config["processors"][-1] if config["processors"] else None
    if not isinstance(renderer, structlog.processors.JSONRenderer):
        return None
    logger = factory()
    return logger.fd if isinstance(logger, FdLogger) else None


class AccessLog:
    """Writes `AccessRecord`s; disabled, it does nothing.

    With JSON logging set up by `configure_logging`, lines are rendered here with orjson
    (same keys as structlog's lines): structlog's bound-logger machinery alone costs
    ~12 µs per call on the benchmark machine, more than the rest of the line.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._fd: int | None = None
        self._resolved = False

    def write(self, record: AccessRecord) -> None:
        if not self.enabled:
            return
        if not self._resolved:  # logging is configured by now (at the first request)
            self._fd, self._resolved = _json_fd(), True
        fields: dict[str, Any] = {
            "request_id": record.request_id, "client_request_id": record.client_request_id,
            "endpoint": record.endpoint, "deployment": record.deployment, "role": record.role,
            "status": record.status, "model_status": record.model_status,
            "latency_ms": round(record.latency_ms, 3), "request_bytes": record.request_bytes,
            "response_bytes": record.response_bytes}
        if self._fd is None:
            structlog.get_logger("scoregate.access").info("request", **fields)
            return
        fields["event"] = "request"
        fields["level"] = "info"
        fields["timestamp"] = datetime.now(UTC)  # orjson writes it as isoformat() would
        os.write(self._fd, orjson.dumps(fields, option=_LINE))

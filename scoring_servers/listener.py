"""The listening socket and the uvicorn run both scoring servers share: bind (`--port`) or
adopt the supervisor's socket (`--fd`), say where they listen, serve until SIGTERM/SIGINT and
end with exit code 0 after a clean stop. Python 3.8+.
"""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn

from scoring_servers.errors import UsageError

BACKLOG = 2048
GRACEFUL_SHUTDOWN_S = 10
_AF_UNIX = getattr(socket, "AF_UNIX", -1)  # a managed instance's socket (not on Windows)
_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6, _AF_UNIX)


def open_socket(fd: int | None, host: str, port: int | None) -> socket.socket:
    """The supervisor's socket `fd` when given, else a new one bound to `host`:`port`."""
    if fd is not None:
        return adopt_socket(fd)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port or 0))
        sock.listen(BACKLOG)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def adopt_socket(fd: int) -> socket.socket:
    """The supervisor's socket: it keeps the port across restarts of this process."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UsageError(f"--fd {fd} is not an open socket: {exc}") from exc
    if sock.type != socket.SOCK_STREAM or sock.family not in _STREAM_FAMILIES:
        raise UsageError(f"--fd {fd} is not a TCP or Unix stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(BACKLOG)
    return sock


def listening_url(sock: socket.socket) -> str:
    if sock.family == _AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_until_stopped(app: Any, sock: socket.socket, http: Any, access_log: bool,
                      log_level: int, logger: logging.Logger) -> None:
    """Serve `app` on `sock` until SIGTERM/SIGINT, then finish the requests in flight (at most
    GRACEFUL_SHUTDOWN_S). `http` is uvicorn's protocol (a class, or its name)."""
    config = uvicorn.Config(
        app, loop="uvloop", http=http, ws="none", lifespan="on",
        access_log=access_log, log_config=None, log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # Per-request work we do not need: X-Forwarded-* parsing, Date and Server headers.
        proxy_headers=False, server_header=False, date_header=False)
    print(f"listening on {listening_url(sock)}", flush=True)
    _absorb_stop_signals(logger)
    uvicorn.Server(config).run(sockets=[sock])


def _absorb_stop_signals(logger: logging.Logger) -> None:
    """uvicorn re-raises the stop signal after its graceful shutdown; with these handlers in
    place that re-raise is a no-op, so the process ends with exit code 0 after a clean stop."""
    def ignore(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping on signal %d", signum)

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)

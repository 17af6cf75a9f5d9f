"""HTTP/1.1 over a managed instance's Unix socket (`unix:/path.sock` routes), for tests."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Sequence
from pathlib import Path

from tests.support.processes import ProcessGroup, wait_until


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def request(url: str, method: str, path: str, body: bytes | None = None,
            timeout: float = 30.0) -> tuple[int, bytes]:
    """(status, body) of one request to the instance at `url` (`unix:<socket path>`)."""
    if not url.startswith("unix:"):
        raise ValueError(f"not a unix: route: {url}")
    connection = UnixConnection(url[len("unix:"):], timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ok(url: str, path: str = "/") -> bool:
    try:
        return 200 <= request(url, "GET", path, timeout=2.0)[0] < 300
    except OSError:
        return False


def serve_on_unix_socket(processes: ProcessGroup, path: Path, args: Sequence[str]) -> str:
    """Start a scoring server as the supervisor does, on a Unix socket: bind and listen here,
    pass the fd down (`--fd N`), wait for `GET /`; returns its route URL (`unix:<path>`)."""
    url = f"unix:{path}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        sock.listen(64)
        started = processes.python(*args, "--fd", str(sock.fileno()),
                                   pass_fds=[sock.fileno()], name="unix")
        wait_until(lambda: ok(url) or started.proc.poll() is not None, 60,
                   what="GET / on the Unix socket")
    if started.proc.poll() is not None:
        raise AssertionError(f"the server exited:\n{started.log()}")
    return url

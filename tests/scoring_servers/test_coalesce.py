"""One write per answer: the coalescing transport in isolation, then HTTP framing through a real
server (keep-alive, pipelining, 100-continue, large answers, connection: close)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from scoring_servers.azureml.coalesce import CoalescingTransport
from tests.scoring_servers.server_helpers import ScoringServer, start_server, write_script
from tests.support.processes import ProcessGroup


class RecordingTransport:
    """Stands in for uvloop's transport: records the calls the coalescing one makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def _coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


def test_writes_of_one_loop_turn_become_one_write() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        transport, inner = _coalescing()
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(bytearray(b"body"))
        assert inner.calls == []
        assert transport.get_write_buffer_size() == 7 + 23
        await asyncio.sleep(0)
        transport.write(b"next answer")
        await asyncio.sleep(0)
        return inner.calls

    assert asyncio.run(scenario()) == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody"),
                                       ("write", b"next answer")]


def test_close_sends_pending_bytes_first_and_abort_drops_them() -> None:
    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        closed, closed_inner = _coalescing()
        closed.write(b"last words")
        closed.close()
        aborted, aborted_inner = _coalescing()
        aborted.write(b"never sent")
        aborted.abort()
        await asyncio.sleep(0)
        assert closed.get_extra_info("peername") == "extra peername"  # passed through
        return closed_inner.calls, aborted_inner.calls

    closed_calls, aborted_calls = asyncio.run(scenario())
    assert closed_calls == [("write", b"last words"), ("close", b"")]
    assert aborted_calls == [("abort", b"")]


ECHO_SIZE = """
    def init():
        pass

    def run(raw_data):
        return "x" * int(raw_data)
"""


def _raw_exchange(server: ScoringServer, payload: bytes, answers: int) -> list[tuple[bytes, bytes]]:
    """Send raw bytes, read `answers` responses (head, body) by their content-length."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(payload)
        reader = sock.makefile("rb")
        replies: list[tuple[bytes, bytes]] = []
        for _ in range(answers):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    raise AssertionError(f"connection closed after {replies!r} and {head!r}")
                head += line
            if head.startswith(b"HTTP/1.1 100"):
                replies.append((head, b""))
                continue
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            replies.append((head, reader.read(length)))
        return replies


def _post(size: int, extra: str = "") -> bytes:
    body = str(size).encode()
    return (f"POST /score HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def test_http_framing_through_the_server(processes: ProcessGroup, code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, ECHO_SIZE))
    sizes = [3, 0, 50_000, 2_000_000, 1]
    pipelined = _raw_exchange(server, b"".join(_post(size) for size in sizes), len(sizes))
    assert [json.loads(body) for _, body in pipelined] == ["x" * size for size in sizes]
    assert all(head.startswith(b"HTTP/1.1 200 OK\r\n") for head, _ in pipelined)

    continued = _raw_exchange(server, _post(5, "Expect: 100-continue\r\n"), 2)
    assert continued[0][0].startswith(b"HTTP/1.1 100 Continue")
    assert json.loads(continued[1][1]) == "xxxxx"

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(_post(4, "Connection: close\r\n"))
        received = b""
        while chunk := sock.recv(65536):  # the server closes after the answer
            received += chunk
    assert received.endswith(b'\r\n\r\n"xxxx"')
    assert b"connection: close" in received.lower()

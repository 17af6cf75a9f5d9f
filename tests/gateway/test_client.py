"""gateway/http/client.py against a scripted raw-socket HTTP server on loopback.

Each test scripts the server's answers byte for byte, so framing (Content-Length, chunked,
end of connection), keep-alive reuse, closes, resets, garbage and timeouts are exact.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.http.client import (
    ConnectFailed,
    HttpClient,
    Origin,
    ResponseFailed,
    ResponseTimeout,
    request_head,
)
from tests.support.loops import run_bounded

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


@dataclass
class Server:
    """Reads each request (head + Content-Length body) and lets `reply` answer it."""

    reply: Reply
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                await self.reply(head + body, writer)
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def run(reply: Reply, scenario: Callable[[HttpClient, Server], Awaitable[None]]) -> Server:
    async def main() -> Server:
        server = Server(reply)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        client = HttpClient(idle_timeout_s=5.0)
        try:
            await asyncio.wait_for(scenario(client, server), 30)
        finally:
            client.close()
            listener.close()
        return server
    return run_bounded(main())


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Let the loop run until `condition` holds (what the client or server has observed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def post(client: HttpClient, server: Server, body: bytes = b"{}",
               timeout_s: float = 5.0) -> tuple[int, bytes]:
    answer = await client.request(server.url, "POST", "/score",
                                  [(b"content-type", b"application/json")], body, timeout_s)
    if answer.rest is None:
        return answer.status, answer.body
    rest = [answer.body]  # a large answer: the rest streams
    while chunk := await answer.rest.read():
        rest.append(chunk)
    return answer.status, b"".join(rest)


def test_keep_alive_reuses_one_connection_and_sends_exact_requests() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(request.split(b"\r\n\r\n", 1)[1]))

    async def scenario(client: HttpClient, server: Server) -> None:
        for index in range(5):
            assert await post(client, server, b'{"n": %d}' % index) == (200, b'{"n": %d}' % index)

    server = run(reply, scenario)
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /score HTTP/1.1"
    assert b"content-type: application/json" in head and b"content-length: 8" in head
    assert any(line.startswith(b"host: 127.0.0.1:") for line in head)


def test_request_head_sends_the_upstreams_own_host_and_a_url_prefix() -> None:
    origin = Origin.parse("http://example.test:81/prefix/")
    head = request_head("GET", origin.base_path + "/swagger.json?x=1", origin,
                        [(b"x-a", "b")], 0)
    assert head == (b"GET /prefix/swagger.json?x=1 HTTP/1.1\r\nhost: example.test:81\r\n"
                    b"x-a: b\r\ncontent-length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="http"):
        Origin.parse("ftp://example.test")


def test_chunked_and_end_of_connection_bodies_arrive_whole() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"chunked" in request:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        else:  # no length at all: the body ends with the connection
            writer.write(b"HTTP/1.1 201 Created\r\nx-a: 1\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

    async def scenario(client: HttpClient, server: Server) -> None:
        assert await post(client, server, b"chunked") == (200, b"hello world")
        assert await post(client, server, b"chunked") == (200, b"hello world")
        assert await post(client, server, b"eof") == (201, b"until the end")
        assert await post(client, server, b"chunked") == (200, b"hello world")

    assert run(reply, scenario).connections == 2  # the EOF-delimited answer used up one


def test_connection_close_and_idle_close_by_the_server_are_never_client_visible() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"close-now" in request:
            writer.write(ok(extra=b"connection: close\r\n"))
        else:
            writer.write(ok())
        await writer.drain()
        if b"close" in request:  # "close-later": closed while idle, without saying so
            writer.close()

    async def scenario(client: HttpClient, server: Server) -> None:
        for body in (b"close-now", b"close-later", b"x", b"close-later", b"x"):
            assert (await post(client, server, body))[0] == 200
            if b"close" in body:  # the close reaches the client before the next request
                await until(lambda: client.pool(server.url).idle == 0,
                            "the client to drop the closed connection")

    server = run(reply, scenario)
    assert len(server.requests) == 5  # each request reached the server exactly once
    assert server.connections == 4  # a new one after each close, and reuse otherwise


@pytest.mark.parametrize("fault, words", [
    (b"truncated", "closed before a complete answer"),
    (b"malformed", "malformed answer"),
    (b"reset", "connection"),
    (b"stray", None),
])
def test_faults_fail_the_request_and_the_connection_is_not_reused(fault: bytes,
                                                                  words: str | None) -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"truncated" in request:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten!!")
            await writer.drain()
            writer.close()
        elif b"malformed" in request:
            writer.write(b"this is not HTTP\r\n\r\n")
        elif b"reset" in request:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-len")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif b"stray" in request:  # a whole answer, then bytes nobody asked for
            writer.write(ok() + b"HTTP/1.1 200 OK\r\n")
        else:
            writer.write(ok())

    async def scenario(client: HttpClient, server: Server) -> None:
        if words is None:
            assert await post(client, server, fault) == (200, b'{"ok": true}')
        else:
            with pytest.raises(ResponseFailed, match=words):
                await post(client, server, fault)
        await until(lambda: client.pool(server.url).idle == 0,
                    "the client to drop the faulty connection")
        assert await post(client, server, b"good") == (200, b'{"ok": true}')

    assert run(reply, scenario).connections == 2


def test_timeout_and_cancellation_drop_the_connection() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"hang" not in request:
            writer.write(ok())

    async def scenario(client: HttpClient, server: Server) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ResponseTimeout, match="within 0.2 s"):
            await post(client, server, b"hang", timeout_s=0.2)
        assert 0.15 < loop.time() - started < 5
        task = asyncio.ensure_future(post(client, server, b"hang"))
        await until(lambda: len(server.requests) == 2, "the second request to arrive")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await post(client, server, b"good") == (200, b'{"ok": true}')

    assert run(reply, scenario).connections == 3


def test_refused_connect_is_marked_safe_to_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused

        async def main() -> None:
            client = HttpClient()
            try:
                with pytest.raises(ConnectFailed) as caught:
                    await client.request(f"http://127.0.0.1:{port}", "POST", "/score", [],
                                         b"{}", 5.0)
                assert caught.value.refused
            finally:
                client.close()

        run_bounded(main())


def test_ten_megabyte_bodies_both_ways() -> None:
    payload = bytes(range(256)) * (10 * 4096)

    async def reply(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(request.split(b"\r\n\r\n", 1)[1]))

    async def scenario(client: HttpClient, server: Server) -> None:
        assert await post(client, server, payload, timeout_s=20) == (200, payload)

    run(reply, scenario)

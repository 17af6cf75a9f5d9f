"""The one fake upstream of the tests: a scoring server that speaks real HTTP/1.1 on loopback,
over raw sockets (not a framework, so the recorded bytes are exactly what the gateway sent),
well-behaved or misbehaving on request.

    python -m tests.support.fake_upstream --port-file F [--name N] [--delay S] [--status N]
        [--echo] [--record]

A well-behaved backend named `--name` (gateway tests):

    POST /score      JSON {"name", "mirror", "headers", "body_bytes"} with header x-backend,
                     or the request body itself with --echo, after --delay s, with --status
    GET /stats       {"requests": POSTs to /score so far, "mirror": those marked as copies}
    GET /swagger.json{"swagger": "2.0", "name", "query"}

Faults, picked by the first path segment, so one process serves every one: a deployment's
`url:` is `http://127.0.0.1:PORT/<mode>/score` (reliability tests).

    good      200 JSON {"ok": true, "bytes": n}
    echo      200 with the request body as the response body
    big       200 with a 10 MiB body (bytes i % 251)
    slow      200 whose head and body are written one byte at a time, 10 ms apart
    pause     200 like good, after one second (requests that stay in flight)
    hang      a 200 head announcing 100 body bytes, then nothing (the connection stays open)
    reset     half of a head, then a TCP reset (SO_LINGER 0)
    truncated a head announcing 1000 body bytes, 10 of them, then close
    malformed bytes that are not an HTTP response, then close
    flaky     200 like good, then closes the kept-alive connection at random (half the time,
              after 0-30 ms) without saying Connection: close; `GET /__settled` lists the
              bodies whose connection has been closed or kept by then
    switch    101 Switching Protocols (to h2c), then nothing
    hop       200 whose `Connection` names `X-Internal`, sent too (must not reach the client)
    many      200 with 150 extra headers
    huge      200 with one 80 KiB header
    cut       a head announcing 10 MiB, 1 MiB of it, then close (fails while streaming)

`GET /` answers Healthy. With --record, `GET /__requests` returns every other request seen so
far (method, path, headers, body as latin-1) and `POST /__reset` forgets them; without it
nothing is kept, so a long load costs no memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from pathlib import Path

BIG_BYTES = 10 * 1024 * 1024
MAX_HEAD = 256 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def to_json(self) -> dict[str, object]:
        return {"method": self.method, "path": self.path, "headers": list(self.headers),
                "body": self.body.decode("latin-1")}


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class Behaviour:
    """What POST /score does (the well-behaved backend)."""

    name: str = "backend"
    delay: float = 0.0
    status: int = 200
    echo: bool = False


@dataclass
class Recorder:
    record: bool = False
    seen: list[Request] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"requests": 0, "mirror": 0})
    settled: list[str] = field(default_factory=list)  # flaky bodies whose close is decided
    rng: random.Random = field(default_factory=random.Random)

    def keep(self, request: Request) -> None:
        if self.record:
            self.seen.append(request)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request, or None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise BadRequest("connection closed inside a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers = tuple((name.strip(), value.strip()) for name, _, value in
                    (line.partition(":") for line in lines[1:]))
    request = Request(parts[0], parts[1], headers, b"")
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    chunked = (request.header("transfer-encoding") or "").lower() == "chunked"
    if len(lengths) > 1 or (lengths and chunked):
        raise BadRequest("ambiguous body framing")
    if chunked:
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(lengths[0])) if lengths else b""
    return Request(request.method, request.path, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def response(status: int, body: bytes, content_type: str = "application/json",
             extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {_reason(status)}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def big_body() -> bytes:
    return bytes(i % 251 for i in range(251)) * (BIG_BYTES // 251) + bytes(range(BIG_BYTES % 251))


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FakeUpstream:
    def __init__(self, behaviour: Behaviour, record: bool) -> None:
        self.behaviour = behaviour
        self.recorder = Recorder(record)

    @cached_property
    def _big(self) -> bytes:
        return big_body()  # built on first use: most backends never answer `big`

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                if not await self._answer(request, writer):
                    break
                if (request.header("connection") or "").lower() == "close":
                    break
        except (BadRequest, ValueError) as error:
            writer.write(response(400, json.dumps({"message": str(error)}).encode(),
                                  extra="Connection: close\r\n"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; False when the connection must end."""
        path, _, query = request.path.partition("?")
        control = self._control(request.method, path, query)
        if control is not None:
            writer.write(control)
            await writer.drain()
            return True
        self.recorder.keep(request)
        mode = path.strip("/").split("/")[0]
        if request.method == "POST" and path == "/score":
            return await self._score(request, writer)
        return await getattr(self, f"_mode_{mode}", self._mode_unknown)(request, writer)

    def _control(self, method: str, path: str, query: str) -> bytes | None:
        """The answers about the fake itself (health, counts, records), never recorded."""
        if method == "GET" and path == "/":
            return response(200, b"Healthy", "text/plain")
        if method == "GET" and path == "/stats":
            return response(200, json.dumps(self.recorder.counts).encode())
        if method == "GET" and path == "/swagger.json":
            return response(200, json.dumps({"swagger": "2.0", "name": self.behaviour.name,
                                             "query": query}).encode())
        if path == "/__settled":
            return response(200, json.dumps(self.recorder.settled).encode())
        if path == "/__requests":
            return response(200, json.dumps([r.to_json() for r in self.recorder.seen]).encode())
        if path == "/__reset":
            self.recorder.seen.clear()
            return response(200, b"{}")
        return None

    async def _score(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        behaviour = self.behaviour
        mirrored = request.header("x-scoregate-mirror") == "1"
        self.recorder.counts["requests"] += 1
        self.recorder.counts["mirror"] += mirrored
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.echo:
            content_type = request.header("content-type") or "application/octet-stream"
            writer.write(response(behaviour.status, request.body, content_type))
        else:
            data = {"name": behaviour.name, "mirror": mirrored,
                    "headers": dict(request.headers), "body_bytes": len(request.body)}
            writer.write(response(behaviour.status, json.dumps(data).encode(),
                                  extra=f"x-backend: {behaviour.name}\r\n"))
        await writer.drain()
        return True

    async def _mode_good(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, json.dumps({"ok": True, "bytes": len(request.body)}).encode()))
        await writer.drain()
        return True

    async def _mode_echo(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, request.body, "application/octet-stream"))
        await writer.drain()
        return True

    async def _mode_big(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, self._big, "application/octet-stream"))
        await writer.drain()
        return True

    async def _mode_slow(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        for byte in response(200, b'{"slow": true}'):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.01)
        return True

    async def _mode_pause(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1.0)
        return await self._mode_good(request, writer)

    async def _mode_hang(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3600)
        return False

    async def _mode_reset(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await writer.drain()
        await asyncio.sleep(0.01)
        reset(writer)
        return False

    async def _mode_truncated(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"partial\":")
        await writer.drain()
        return False

    async def _mode_cut(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % BIG_BYTES + self._big[:1024 * 1024])
        await writer.drain()
        return False

    async def _mode_malformed(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 2OO 0K\r\nContent-Length: banana\r\n\x00\x01\r\n\r\nnot http")
        await writer.drain()
        return False

    async def _mode_flaky(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        await self._mode_good(request, writer)
        close = self.recorder.rng.random() < 0.5
        if close:
            await asyncio.sleep(self.recorder.rng.uniform(0, 0.03))
            writer.close()
        self.recorder.settled.append(request.body.decode("latin-1"))
        return not close

    async def _mode_switch(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3600)
        return False

    async def _mode_hop(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, b"{}", extra="Connection: keep-alive, X-Internal\r\n"
                                                "X-Internal: secret\r\nX-Model: kept\r\n"))
        await writer.drain()
        return True

    async def _mode_many(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        extra = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(150))
        writer.write(response(200, b"{}", extra=extra))
        await writer.drain()
        return True

    async def _mode_huge(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, b"{}", extra=f"X-Huge: {'h' * 80 * 1024}\r\n"))
        await writer.drain()
        return True

    async def _mode_unknown(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(404, json.dumps({"message": f"no mode {request.path}"}).encode()))
        return True


async def serve(port_file: Path, behaviour: Behaviour, record: bool) -> None:
    server = FakeUpstream(behaviour, record)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, limit=MAX_HEAD,
                                          backlog=1024)
    port_file.write_text(str(listener.sockets[0].getsockname()[1]))
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    behaviour = Behaviour(args.name, args.delay, args.status, args.echo)
    try:
        asyncio.run(serve(args.port_file, behaviour, args.record))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

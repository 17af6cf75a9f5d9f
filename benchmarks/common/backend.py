"""A fast fake scoring backend: answers every POST with a fixed small JSON body.

Raw asyncio + httptools on uvloop, so the backend costs as little CPU as possible and the
gateway's cost stands out. `--delay-ms` holds each answer that long without blocking the loop
(the 1 ms primary and the 100 ms shadow of the mirror case). `GET /` answers `Healthy`;
`GET /stats` answers the number of POSTs seen, so a benchmark can count mirror copies.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass, field

import httptools
import uvloop

BODY = b'{"result": [11055.977245525679, 4503.079536107787]}'


def _response(status: bytes, body: bytes, keep_alive: bool, content_type: bytes) -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
            + b"\r\ncontent-length: " + str(len(body)).encode()
            + b"\r\nconnection: " + connection + b"\r\n\r\n" + body)


@dataclass
class Counters:
    posts: int = 0


def big_body(kb: int) -> bytes:
    """A JSON answer of about `kb` KiB (a shadow that answers big, for the mirror case)."""
    filler = b"0," * (kb * 512)
    return b'{"result": [' + filler + b'0]}'


@dataclass(frozen=True)
class Answers:
    """The prebuilt responses (keep-alive or not), so a request costs one write."""

    body: bytes = BODY
    score: dict[bool, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for keep_alive in (True, False):
            self.score[keep_alive] = _response(b"200 OK", self.body, keep_alive,
                                               b"application/json")
    healthy: dict[bool, bytes] = field(default_factory=lambda: {
        k: _response(b"200 OK", b"Healthy", k, b"text/plain") for k in (True, False)})


class BackendProtocol(asyncio.Protocol):
    def __init__(self, delay_s: float, counters: Counters, answers: Answers) -> None:
        self._delay_s = delay_s
        self._counters = counters
        self._answers = answers
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_response(b"400 Bad Request", b'{"message": "bad request"}',
                                                False, b"application/json"))
                self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_message_complete(self) -> None:
        keep_alive = self._parser.should_keep_alive()
        method, url = self._parser.get_method(), self._url
        self._url = b""
        if method == b"POST":
            self._counters.posts += 1
            answer = self._answers.score[keep_alive]
        elif url == b"/stats":
            body = b'{"posts": %d}' % self._counters.posts
            answer = _response(b"200 OK", body, keep_alive, b"application/json")
        else:
            answer = self._answers.healthy[keep_alive]
        if self._delay_s > 0:
            asyncio.get_running_loop().call_later(self._delay_s, self._send, answer, keep_alive)
        else:
            self._send(answer, keep_alive)

    def _send(self, answer: bytes, keep_alive: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(answer)
        if not keep_alive:
            self._transport.close()


async def serve(host: str, port: int, delay_s: float, body_kb: int = 0) -> None:
    loop = asyncio.get_running_loop()
    counters, answers = Counters(), Answers(big_body(body_kb) if body_kb else BODY)
    server = await loop.create_server(lambda: BackendProtocol(delay_s, counters, answers),
                                      host, port, backlog=2048, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"backend listening on http://{host}:{port} (delay {delay_s * 1000:g} ms)", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="hold each answer this long (without blocking other requests)")
    parser.add_argument("--body-kb", type=int, default=0,
                        help="answer about this many KiB of JSON instead of the 51-byte body")
    args = parser.parse_args()
    if args.delay_ms < 0 or args.body_kb < 0:
        parser.error("--delay-ms and --body-kb must be 0 or more")
    uvloop.run(serve(args.host, args.port, args.delay_ms / 1000.0, args.body_kb))


if __name__ == "__main__":
    main()

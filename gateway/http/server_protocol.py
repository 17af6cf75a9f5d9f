"""uvicorn's httptools protocol with the bounds a gateway in front of clients needs.

uvicorn arms no timer until a first request is complete, and llhttp does not bound header
size, so a client could hold a connection forever by sending half a request head (slowloris),
or make the server buffer headers without limit. `hardened_protocol` returns a subclass that:
- closes a connection whose request head is not complete `header_timeout_s` after its first
  byte arrived (or after the connection was made), with a 408;
- answers 408 and closes when a request body stalls: no body byte for `body_timeout_s`
  (nginx's `client_body_timeout`); the application's `receive` then sees a disconnect, and
  the scope carries `BODY_TIMEOUT_SCOPE_KEY` so the request is recorded as a 408;
- answers 431 and closes when the request line plus headers pass `max_header_bytes`;
- closes new connections at once while `max_connections` are open.
Requests llhttp refuses (bad framing, smuggling attempts) get a JSON 400, and the connection
is closed, so nothing after the bad bytes is ever read as a request.
It is still uvicorn's httptools protocol: only these callbacks are extended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.asgi import BODY_TIMEOUT_SCOPE_KEY

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 4096


class HeadersTooLarge(Exception):
    pass


class Deadline:
    """Calls `expired` once `timeout_s` pass after the last `start` with no `stop` since.

    The loop timer is re-armed lazily: `start` and `stop` only note the time, and a timer that
    fires early re-arms for what is left. So a keep-alive connection arms at most one timer
    per `timeout_s`, not one (plus a cancel) per request."""

    __slots__ = ("_loop", "_timeout_s", "_expired", "_since", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float,
                 expired: Callable[[], None]) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._expired = expired
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(self._timeout_s, self._check)

    def stop(self) -> None:
        self._since = None  # a pending timer finds nothing to do

    def close(self) -> None:
        self._since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._since is None:
            return
        left = self._since + self._timeout_s - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check)
            return
        self._since = None
        self._expired()


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s = DEFAULT_BODY_TIMEOUT_S
    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    max_connections = DEFAULT_MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline = Deadline(self.loop, self.header_timeout_s, self._head_timed_out)
        self._body_deadline = Deadline(self.loop, self.body_timeout_s, self._body_timed_out)
        self._head_bytes = 0
        self._head_too_large = False
        self._in_message = False  # between llhttp's message begin and message complete
        self._in_body = False  # between headers complete and message complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.abort()
            return
        self._head_deadline.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline.close()
        self._body_deadline.close()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_message and not self._head_deadline.running:
            self._head_deadline.start()  # the first byte of a request (or of junk) starts the clock
        super().data_received(data)
        if self._in_body:  # only a body split over several reads starts its clock
            self._body_deadline.start()

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._in_message = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._in_message = self._in_body = False
        self._body_deadline.stop()
        super().on_message_complete()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_deadline.stop()
        self._in_body = True
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what llhttp refuses, as JSON like every other error."""
        if self._head_too_large:
            self._send_and_close(b"431 Request Header Fields Too Large",
                                 f"the request line and headers are larger than "
                                 f"{self.max_header_bytes} bytes")
        else:
            self._send_and_close(b"400 Bad Request", "malformed HTTP request")

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._head_too_large = True
            raise HeadersTooLarge()  # llhttp stops parsing; uvicorn calls send_400_response

    def _head_timed_out(self) -> None:
        if not self.transport.is_closing():
            self._send_and_close(b"408 Request Timeout", f"the request head did not arrive "
                                 f"within {self.header_timeout_s:g} s")

    def _body_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # we stopped reading, not the client: wait again
            self._body_deadline.start()
            return
        cycle = self.cycle
        if cycle is not None:
            cycle.scope[BODY_TIMEOUT_SCOPE_KEY] = self.body_timeout_s  # type: ignore[literal-required]
        if cycle is None or not cycle.response_started:
            self._send_and_close(b"408 Request Timeout", f"no request body bytes arrived "
                                 f"for {self.body_timeout_s:g} s")
        else:
            self.transport.close()

    def _send_and_close(self, status: bytes, message: str) -> None:
        body = b'{"message":"' + message.encode("ascii") + b'"}'
        self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode("ascii") +
                             b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()


def hardened_protocol(header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                      max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                      max_connections: int = DEFAULT_MAX_CONNECTIONS,
                      body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
                      ) -> type[HardenedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn's `http=`, with these bounds."""
    if header_timeout_s <= 0 or body_timeout_s <= 0 or max_header_bytes < 1024 \
            or max_connections < 1:
        raise ValueError("header_timeout_s and body_timeout_s must be > 0, max_header_bytes "
                         ">= 1024 and max_connections >= 1")
    return type("BoundedHttpToolsProtocol", (HardenedHttpToolsProtocol,), {
        "header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes,
        "max_connections": max_connections, "body_timeout_s": body_timeout_s})

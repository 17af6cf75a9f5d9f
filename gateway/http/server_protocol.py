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
- at `max_connections` open, cuts the connection that has been idle longest (no request under
  way: never sent a byte, or kept alive after an answer) to make room, and closes the new one
  only when none is idle: a flood of silent connections cannot lock legitimate clients out;
- aborts a connection whose answer has not drained for `send_timeout_s` (nginx's
  `send_timeout`): a client that stops reading holds one transport buffer, not the answer;
- serves requests that ask to `Upgrade` (h2c from `curl --http2`, WebSocket) as plain HTTP/1.1
  with their body, as nginx does: llhttp skips the body of such a request and stops, so the
  head is re-parsed without the upgrade and parsing goes on;
- refuses what a proxy must not guess about: duplicate `Host`, HTTP/1.1 without `Host` (400),
  `Transfer-Encoding` on HTTP/1.0 (400), a transfer coding other than `chunked` (501), an HTTP
  version other than 1.0/1.1 (505), CONNECT (405).
Requests llhttp refuses (bad framing, smuggling attempts) get a JSON 400, and the connection
is closed, so nothing after the bad bytes is ever read as a request. Every refusal here is a
JSON `{"message"}` and closes the connection.
It is still uvicorn's httptools protocol: only these callbacks are extended.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from typing import Any

import httptools
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.asgi import ABORT_SCOPE_KEY, BODY_TIMEOUT_SCOPE_KEY, CLIENT_GONE_SCOPE_KEY

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_SEND_TIMEOUT_S = 60.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 4096
# Descriptors kept out of the scoring connections' budget: the admin listener and its
# connections, the state store, log files, instances' pipes, the loop's own.
RESERVED_FDS = 64


class Refused(Exception):
    """Raised inside a parser callback to stop parsing; `send_400_response` answers it."""

    def __init__(self, status: bytes, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _without_upgrade(name: bytes, value: bytes) -> bytes | None:
    """A header as re-parsed after an ignored upgrade: `upgrade` dropped, the `upgrade` token
    taken out of `connection` (None: leave the header out)."""
    if name == b"upgrade":
        return None
    if name != b"connection":
        return value
    tokens = [t for t in value.split(b",") if t.strip().lower() != b"upgrade"]
    return b",".join(tokens) if any(t.strip() for t in tokens) else None


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
    send_timeout_s = DEFAULT_SEND_TIMEOUT_S
    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    max_connections = DEFAULT_MAX_CONNECTIONS
    # Idle connections of one listener, longest idle first (dicts keep insertion order); each
    # class from `hardened_protocol` gets its own, and its own `full` (said once, when the cap
    # was first met with nothing idle to cut).
    idle: dict[HardenedHttpToolsProtocol, None] = {}
    full: list[bool] = [False]
    listener = "scoring"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline = Deadline(self.loop, self.header_timeout_s, self._head_timed_out)
        self._body_deadline = Deadline(self.loop, self.body_timeout_s, self._body_timed_out)
        self._send_deadline = Deadline(self.loop, self.send_timeout_s, self._send_timed_out)
        self._head_bytes = 0
        self._refusal: Refused | None = None
        self._upgrade_skipped = False  # llhttp took the head for an upgrade: re-parse it
        self._in_message = False  # between llhttp's message begin and message complete
        self._in_body = False  # between headers complete and message complete
        self._abort = self._abort_answer  # bound once: put in each request's scope

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._cut_longest_idle():
            self._say_full()
            transport.abort()
            return
        self.idle[self] = None
        self._head_deadline.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        self._head_deadline.close()
        self._body_deadline.close()
        self._send_deadline.close()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a streaming answer stops there
            cycle.scope[CLIENT_GONE_SCOPE_KEY] = True  # type: ignore[literal-required]
        super().connection_lost(exc)

    def _say_full(self) -> None:
        if not self.full[0]:
            self.full[0] = True
            structlog.get_logger("scoregate.gateway").warning(
                "connection cap reached: new connections are closed while none is idle",
                listener=self.listener, max_connections=self.max_connections,
                rlimit_nofile=resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def _cut_longest_idle(self) -> bool:
        for other in self.idle:
            del self.idle[other]
            other.transport.abort()  # its connection_lost comes later, from the loop
            self.connections.discard(other)
            return True
        return False

    def data_received(self, data: bytes) -> None:
        if not self._in_message:
            self.idle.pop(self, None)
            if not self._head_deadline.running:
                self._head_deadline.start()  # the first byte of a request (or junk) starts it
        self._feed(data)
        if self._in_body:  # only a body split over several reads starts its clock
            self._body_deadline.start()

    def _feed(self, data: bytes, reparsed: bool = False) -> None:
        """uvicorn's data_received, plus: what the upgrade stop left is parsed on."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._parse_on_without_upgrade(data[upgrade.args[0]:], reparsed)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, Refused):  # raised by one of our callbacks
                self._refusal = error.__context__
            elif "PRI" in str(error) or "HTTP version" in str(error):
                self._refusal = Refused(b"505 HTTP Version Not Supported",
                                        "only HTTP/1.0 and HTTP/1.1 are served")
            self.send_400_response(str(error))

    def _parse_on_without_upgrade(self, rest: bytes, reparsed: bool) -> None:
        """llhttp ended the message after the head of an upgrade request; feed a fresh parser
        the same head without the upgrade, then the bytes that followed (body, pipeline)."""
        method = self.parser.get_method()
        if reparsed or not self._upgrade_skipped or method == b"CONNECT":
            self._refusal = Refused(b"405 Method Not Allowed", "CONNECT and protocol "
                                    "upgrades are not supported")
            self.send_400_response("upgrade")
            return
        head = [method, b" ", self.url, b" HTTP/",
                self.parser.get_http_version().encode("ascii"), b"\r\n"]
        for name, value in self.headers:
            kept = _without_upgrade(name, value)
            if kept is not None:
                head += (name, b": ", kept, b"\r\n")
        head.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._feed(b"".join(head) + rest, reparsed=True)

    def _should_upgrade(self) -> bool:
        return False  # no route here speaks WebSocket: serve the request as HTTP/1.1

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._in_message = True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade():  # llhttp will skip the body and stop: parse it again
            self._upgrade_skipped = True
            return
        self._upgrade_skipped = False
        self._check_head()
        self._head_deadline.stop()
        self._in_body = True
        self.scope[ABORT_SCOPE_KEY] = self._abort  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._upgrade_skipped:
            return  # not the end of a message we started: the re-parse will get there
        self._in_message = self._in_body = False
        self._body_deadline.stop()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_message:
            self.idle[self] = None  # kept alive, waiting for the next request

    def _check_head(self) -> None:
        """The rules llhttp leaves to the server (RFC 9112 §3.2, §6.1)."""
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Refused(b"505 HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are "
                          "served")
        hosts = 0
        coding: bytes | None = None
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
        if hosts > 1:
            raise Refused(b"400 Bad Request", "more than one Host header")
        if hosts == 0 and version == "1.1":
            raise Refused(b"400 Bad Request", "HTTP/1.1 requests must carry a Host header")
        if coding is not None:
            if version == "1.0":
                raise Refused(b"400 Bad Request", "Transfer-Encoding is not allowed in HTTP/1.0")
            codings = [c.strip().lower() for c in coding.split(b",")]
            if any(c != b"chunked" for c in codings):
                raise Refused(b"501 Not Implemented", "the only transfer coding accepted in a "
                              "request is chunked")

    def pause_writing(self) -> None:
        super().pause_writing()
        self._send_deadline.start()  # the client is not taking what we send

    def resume_writing(self) -> None:
        super().resume_writing()
        self._send_deadline.stop()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what llhttp refuses, as JSON like every other error."""
        refusal = self._refusal
        if refusal is None:
            self._send_and_close(b"400 Bad Request", "malformed HTTP request")
        else:
            self._send_and_close(refusal.status, refusal.message)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            raise Refused(b"431 Request Header Fields Too Large", f"the request line and headers "
                          f"are larger than {self.max_header_bytes} bytes")

    def _abort_answer(self) -> None:
        """The application gives up on an answer it started (its upstream failed): close the
        connection now, as a client that left, which uvicorn does not log as an app error."""
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.transport.abort()

    def _send_timed_out(self) -> None:
        """Nothing drained for `send_timeout_s`: abort (close() would wait for the buffer)."""
        self.transport.abort()

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
                      send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
                      listener: str = "scoring",
                      ) -> type[HardenedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn's `http=`, with these bounds (one class per
    listener: it holds that listener's idle connections)."""
    if header_timeout_s <= 0 or body_timeout_s <= 0 or send_timeout_s <= 0 \
            or max_header_bytes < 1024 or max_connections < 1:
        raise ValueError("header_timeout_s, body_timeout_s and send_timeout_s must be > 0, "
                         "max_header_bytes >= 1024 and max_connections >= 1")
    return type("BoundedHttpToolsProtocol", (HardenedHttpToolsProtocol,), {
        "header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes,
        "max_connections": max_connections, "body_timeout_s": body_timeout_s,
        "send_timeout_s": send_timeout_s, "idle": {}, "full": [False], "listener": listener})


def connection_cap(requested: int) -> tuple[int, int | None]:
    """The scoring connections this process can hold, and its descriptor limit (None: none).

    Raises the soft RLIMIT_NOFILE to the hard one first (as nginx's `worker_rlimit_nofile`),
    then keeps RESERVED_FDS for everything else and counts two descriptors per connection (a
    client connection may hold an upstream one), so a flood meets the connection cap, which
    cuts idle connections, long before the process runs out of descriptors and the admin
    listener with it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested, None
    return max(1, min(requested, (soft - RESERVED_FDS) // 2)), soft

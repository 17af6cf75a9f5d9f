"""A lean HTTP/1.1 client for the hot path: asyncio Protocols, httptools' response parser and a
keep-alive pool per origin.

Why not aiohttp: per request it builds ClientRequest/ClientResponse, a ClientTimeout, multidicts,
payload objects and tracing hooks; here a request is one write, one future and one timer.

Retry rule (the caller relies on it): a request may go to another instance only when it
provably never reached this one, which is when it raises `ConnectFailed` (nothing was
written). An idle connection the peer has closed is seen by its protocol (EOF or
`connection_lost`) and leaves the pool before it can be picked; idle connections are also
dropped after `idle_timeout_s`, below the keep-alive timeouts of common servers, so a server
rarely closes one just as it is reused. Once any byte of a request is written, a failure is
final (`ResponseFailed`, or `ResponseTimeout`): the instance may have processed it.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

Header = tuple[str | bytes, str | bytes]
_LARGE = 64 * 1024  # bodies at least this big are written without copying them into the head
# An answer whose body passes STREAM_AFTER before it ends is handed over as it streams (its
# first bytes in `body`, the rest in `rest`); smaller ones arrive whole, as one bytes object.
STREAM_AFTER = 64 * 1024
# A streaming answer's unread bytes: reading from the upstream pauses above the high mark and
# resumes below the low one, so a slow reader holds at most this much here.
STREAM_HIGH = 256 * 1024
STREAM_LOW = 64 * 1024
# An answer's head past these is refused (502), as nginx's proxy_buffer_size refuses one.
MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEAD = 64 * 1024


class ClientError(Exception):
    pass


class ConnectFailed(ClientError):
    """Nothing of the request was sent: safe to send it elsewhere."""

    def __init__(self, message: str, refused: bool = False, out_of_fds: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.out_of_fds = out_of_fds  # EMFILE/ENFILE: the gateway's problem, not the instance's


class ResponseFailed(ClientError):
    """The request was (maybe partly) sent, and no complete, well-formed answer came back."""


class ResponseTimeout(ClientError):
    pass


class HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing an answer whose head is too large."""


@dataclass(slots=True)  # one per request: a frozen __init__ costs ~0.5 µs more
class Response:
    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased, as received otherwise
    body: bytes  # the whole body, or its first bytes when `rest` is set
    rest: BodyStream | None = None  # the rest of a large body, still arriving


class BodyStream:
    """The rest of a large answer's body, read as it arrives. Reading paces the upstream: the
    connection stops reading while more than STREAM_HIGH bytes wait here. A read that waits
    `timeout_s` for a byte fails with `ResponseTimeout`; `close` drops the connection when
    the body has not ended (the caller no longer wants it)."""

    __slots__ = ("_connection", "_timeout_s", "_chunks", "_size", "_done", "_error", "_waiter")

    def __init__(self, connection: Connection, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: ClientError | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def read(self) -> bytes:
        """The next bytes of the body; b"" at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            await self._wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size < STREAM_LOW:
            self._connection.resume()
        return chunk

    async def collect(self, limit: int) -> tuple[bytes, int]:
        """The first `limit` bytes of the rest, and how many were read to get them (more than
        `limit`: the body goes on, and the rest is still to read or close)."""
        kept: list[bytes] = []
        size = 0
        while chunk := await self.read():
            if size + len(chunk) > limit:
                kept.append(chunk[:limit - size])
                return b"".join(kept), size + len(chunk)
            kept.append(chunk)
            size += len(chunk)
        return b"".join(kept), size

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._chunks.clear()
            self._connection.abort()

    # from the connection
    def feed(self, data: bytes) -> None:
        if self._done:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > STREAM_HIGH:
            self._connection.pause()
        self._wake()

    def finish(self, error: ClientError | None = None) -> None:
        self._error = error
        self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(self._timeout_s, self._expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._error = ResponseTimeout(f"no answer bytes for {self._timeout_s:g} s")
            self._connection.abort()
            waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an instance URL points: parsed once per URL, not per request."""

    scheme: str
    host: str
    port: int
    host_header: bytes
    base_path: str  # a path prefix in the URL (usually empty)
    unix_path: str = ""  # set for `unix:/path/to.sock`: a managed instance's Unix socket

    @classmethod
    def parse(cls, url: str) -> Origin:
        if url.startswith("unix:"):  # the whole rest is the socket path; no prefix, no TLS
            return cls("http", "localhost", 0, b"localhost", "", url[len("unix:"):])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port][/path], got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.netloc.encode("idna"),
                   parts.path.rstrip("/"))


def request_head(method: str, target: str, origin: Origin, headers: Sequence[Header],
                 body_length: int) -> bytes:
    """The request line and headers. Names and values come from a parsed request or from us,
    so they hold no CR/LF. Host is always the upstream's own (host:port of its URL, nginx's
    `$proxy_host`): callers never pass one."""
    parts = [method.encode("ascii"), b" ", target.encode("latin-1"), b" HTTP/1.1\r\nhost: ",
             origin.host_header, b"\r\n"]
    for name, value in headers:
        if type(name) is str:  # `type() is` costs half what isinstance does; mypy cannot narrow it
            name = name.encode("latin-1")
        if type(value) is str:
            value = value.encode("latin-1")
        parts += (name, b": ", value, b"\r\n")  # type: ignore[arg-type]
    parts += (b"content-length: ", str(body_length).encode("ascii"), b"\r\n\r\n")
    return b"".join(parts)


class Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.alive = True  # False once aborted or lost: never taken from the pool again
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self._head_done = False
        self._head_bytes = 0
        self._size = 0  # body bytes received so far (while not yet streaming)
        self._timeout_s = 0.0  # the request's, for a stream's reads
        self._stream: BodyStream | None = None  # the body of the answer being streamed
        self._paused = False
        self._stray = False  # bytes after the answer: the connection cannot be reused

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None and self._stream is None:  # bytes nobody asked for
            self.abort()  # the connection is not reusable
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, HeadTooLarge):
                error = error.__context__  # type: ignore[assignment]
            self._fail(ResponseFailed(f"malformed answer ({error})"))
            self.abort()
            return
        except httptools.HttpParserUpgrade:  # 101 Switching Protocols: not an answer to proxy
            self._fail(ResponseFailed("the upstream switched protocols (101), which a scoring "
                                      "request never asks for"))
            self.abort()
            return
        if self._stray:
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.alive = False
        self.pool.forget(self)
        if self._stream is None and (self._waiter is None or self._waiter.done()):
            return
        if self._head_done and not self._framed:  # a body delimited by the end of the connection
            self.on_message_complete()
        else:
            reason = "connection reset" if isinstance(exc, ConnectionResetError) else \
                "connection closed before a complete answer"
            self._fail(ResponseFailed(reason))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._waiter is None and self._stream is None:
            self._stray = True

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self._framed = True
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value)
        if len(self._headers) > MAX_RESPONSE_HEADERS or self._head_bytes > MAX_RESPONSE_HEAD:
            raise HeadTooLarge(f"more than {MAX_RESPONSE_HEADERS} headers or "
                               f"{MAX_RESPONSE_HEAD // 1024} KiB of them")

    def on_headers_complete(self) -> None:
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        stream = self._stream
        if stream is not None:
            stream.feed(body)
            return
        self._chunks.append(body)
        self._size += len(body)
        if self._size > STREAM_AFTER:
            self._start_streaming()

    def _start_streaming(self) -> None:
        """Hand the answer over now: its head and first bytes, the rest as it arrives."""
        waiter, self._waiter = self._waiter, None
        self._stream = stream = BodyStream(self, self._timeout_s)
        body = b"".join(self._chunks)
        self._chunks = []
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._parser.get_status_code(),
                                       self._reason.decode("latin-1"), tuple(self._headers),
                                       body, stream))
        else:
            stream.close()

    def on_message_complete(self) -> None:
        waiter = self._waiter
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self._reset()
            return
        keep = self._framed and self._parser.should_keep_alive()
        stream = self._stream
        if stream is not None:
            self._stream = None
            self._reset()
            self.resume()
            stream.finish()
            if not keep:
                self.abort()
            elif self.alive:
                self.pool.release(self)
            return
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        response = Response(status, self._reason.decode("latin-1"), tuple(self._headers), body)
        self._waiter = None
        self._reset()
        if not keep:
            self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if keep and self.alive:
            self.pool.release(self)

    # ours
    def send(self, data: bytes, body: bytes | None, waiter: asyncio.Future[Response],
             timeout_s: float) -> None:
        self._waiter = waiter
        self._timeout_s = timeout_s
        transport = self.transport
        if transport is None:
            raise ResponseFailed("connection closed")
        if body is None or len(body) < _LARGE:
            transport.write(data + body if body else data)
        else:
            transport.writelines((data, body))

    def expire(self, timeout_s: float) -> None:
        """The request's deadline passed: fail it and drop the connection."""
        self._fail(ResponseTimeout(f"no answer within {timeout_s:g} s"))
        self.abort()

    def abandon(self) -> None:
        """The caller stopped waiting (cancelled): the connection is mid-request, drop it."""
        self._fail(ResponseFailed("request abandoned"))
        self.abort()

    def abort(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _fail(self, error: ClientError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.finish(error)

    def _reset(self) -> None:
        self._reason = b""
        self._headers = []
        self._chunks = []
        self._framed = self._head_done = False
        self._head_bytes = self._size = 0


class Pool:
    """Idle keep-alive connections to one origin, most recently used first."""

    def __init__(self, origin: Origin, max_idle: int, idle_timeout_s: float) -> None:
        self.origin = origin
        self._idle: list[Connection] = []
        self._max_idle = max_idle
        self._idle_timeout_s = idle_timeout_s
        self._ssl: ssl.SSLContext | None = (ssl.create_default_context()
                                            if origin.scheme == "https" else None)

    @property
    def idle(self) -> int:
        """Idle connections kept now (those the peer closed have left already)."""
        return len(self._idle)

    def take(self, now: float) -> Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.alive and now - connection.idle_since < self._idle_timeout_s:
                return connection
            connection.abort()
        return None

    async def connect(self, timeout_s: float) -> Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            if origin.unix_path:
                _, connection = await asyncio.wait_for(loop.create_unix_connection(
                    lambda: Connection(self), origin.unix_path), timeout_s)
            else:
                _, connection = await asyncio.wait_for(loop.create_connection(
                    lambda: Connection(self), origin.host, origin.port, ssl=self._ssl), timeout_s)
        except TimeoutError:
            raise ResponseTimeout(f"no connection within {timeout_s:g} s") from None
        except ConnectionRefusedError:
            raise ConnectFailed("connection refused", refused=True) from None
        except OSError as error:
            raise ConnectFailed(f"cannot connect: {error.strerror or error}",
                                out_of_fds=error.errno in (errno.EMFILE, errno.ENFILE)) from None
        return connection

    def release(self, connection: Connection) -> None:
        if len(self._idle) >= self._max_idle:
            connection.abort()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.append(connection)

    def forget(self, connection: Connection) -> None:
        try:
            self._idle.remove(connection)
        except ValueError:
            pass

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.abort()


class HttpClient:
    """Sends requests over kept-alive connections, one pool per origin.

    Concurrency is bounded before the client (the 429 rule, the mirror bound), so the pools
    bound only how many idle connections they keep."""

    def __init__(self, max_idle_per_origin: int = 256, idle_timeout_s: float = 2.0) -> None:
        self._pools: dict[str, Pool] = {}
        self._max_idle = max_idle_per_origin
        self._idle_timeout_s = idle_timeout_s
        self._closed = False

    def pool(self, url: str) -> Pool:
        pool = self._pools.get(url)
        if pool is None:
            try:
                origin = Origin.parse(url)
            except ValueError as error:  # UnicodeError included (an IDNA host that will not encode)
                raise ConnectFailed(f"unusable upstream URL: {error}") from None
            pool = self._pools[url] = Pool(origin, self._max_idle, self._idle_timeout_s)
        return pool

    async def request(self, url: str, method: str, path: str, headers: Sequence[Header],
                      body: bytes | None, timeout_s: float) -> Response:
        """Send one request to the instance at `url` (scheme://host:port[/prefix]) and return
        its whole answer; raises `ConnectFailed`, `ResponseFailed` or `ResponseTimeout`."""
        if self._closed:
            raise ConnectFailed("the client is closed")
        pool = self.pool(url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        connection = pool.take(started)
        remaining_s = timeout_s
        if connection is None:
            connection = await pool.connect(timeout_s)
            remaining_s -= loop.time() - started
        origin = pool.origin
        try:  # from here on, every way out that is not an answer drops the connection
            head = request_head(method, origin.base_path + path, origin, headers,
                                len(body) if body else 0)
        except UnicodeEncodeError as error:  # a URL or header the validation did not stop
            connection.abandon()
            raise ConnectFailed(f"the request cannot be encoded: {error.reason}") from None
        waiter: asyncio.Future[Response] = loop.create_future()
        # The whole request gets `timeout_s`, connect included; the message names that budget.
        timer = loop.call_later(max(remaining_s, 0.0), connection.expire, timeout_s)
        try:
            connection.send(head, body, waiter, timeout_s)
            return await waiter
        except BaseException:
            connection.abandon()
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        self._closed = True
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

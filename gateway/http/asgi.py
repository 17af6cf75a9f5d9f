"""Minimal ASGI plumbing for the hot path: read a bounded body, send a whole response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from gateway.errors import GatewayError
from gateway.http.client import BodyStream, ClientError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
BODY_TIMEOUT_SCOPE_KEY = "scoregate.body_timeout_s"  # set by gateway/http/server_protocol.py
# Set (True) by the protocol when the client's connection ends before the answer does: a
# streaming answer stops there instead of reading the rest from the upstream for nobody.
CLIENT_GONE_SCOPE_KEY = "scoregate.client_gone"
# A callable the protocol puts in the scope: abort the connection mid-answer (the upstream
# failed while streaming) without uvicorn taking it for an application error.
ABORT_SCOPE_KEY = "scoregate.abort"


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of the first header called `name` (lower-case, as uvicorn and our client give)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body is larger than the limit of {limit} bytes")


def declared_length(value: bytes | None, limit: int) -> int | None:
    """The Content-Length, checked against `limit` before any byte of the body is read."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise GatewayError(400, "Content-Length is not a number") from None
    if length < 0:
        raise GatewayError(400, "Content-Length is negative")
    if length > limit:
        raise too_large(limit)
    return length


async def read_body(receive: Receive, limit: int, scope: Scope) -> bytes:
    """The whole request body as bytes; 413 as soon as it grows past `limit`; 408 when the
    protocol cut a stalled body (gateway/http/server_protocol.py marks the scope)."""
    message = await receive()
    if message["type"] == "http.disconnect":  # not an empty body: never forward it as one
        raise _disconnected(scope, "before sending the body")
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        return body  # type: ignore[no-any-return]
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _disconnected(scope, "while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _disconnected(scope: Scope, when: str) -> GatewayError:
    timeout_s = scope.get(BODY_TIMEOUT_SCOPE_KEY)
    if timeout_s is not None:
        return GatewayError(408, f"no request body bytes arrived for {timeout_s:g} s")
    return GatewayError(400, f"the client disconnected {when}")


async def send_response(send: Send, status: int, headers: Headers, body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream_response(send: Send, scope: Scope, status: int, headers: Headers,
                          first: bytes, rest: BodyStream, length: bytes | None) -> tuple[int, bool]:
    """Send an answer whose body is still arriving, at the pace the client takes it: uvicorn's
    send waits while the client's transport is over its high-water mark, and meanwhile `rest`
    stops reading from the upstream, so neither side buffers more than its high mark.

    Returns the bytes sent and whether the body went whole. When the upstream fails the
    connection is aborted mid-answer, so the client cannot take a cut body for a whole one
    (a sized answer is short, a chunked one lacks its last chunk)."""
    if length is not None:
        headers.append((b"content-length", length))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    sent = len(first)
    try:
        while not scope.get(CLIENT_GONE_SCOPE_KEY):
            chunk = await rest.read()
            if not chunk:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return sent, True
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
    except ClientError:
        abort = scope.get(ABORT_SCOPE_KEY)
        if abort is not None:
            abort()
        return sent, False
    rest.close()  # the client is gone: stop reading the upstream for nobody
    return sent, False

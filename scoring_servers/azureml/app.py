"""The HTTP side: a plain ASGI callable, kept small because every request goes through it.

Routes and answers as azureml-inference-server-http 1.5.1 gives them:
- `GET|HEAD /` → `Healthy` (the process only serves after `init()` returned); `OPTIONS /` → 200.
- `POST|GET /score` → run() with the input its signature asks for (run_signature.py);
  `OPTIONS /score` → 200 with an empty body (a `@rawhttp` run() gets every method itself).
- `GET /swagger.json?version=2|3|3.1`.
- anything else → 404 / 405 with azmlinfsrv's (werkzeug's) messages.
With batching (a script with `run_batch`, see scoring_servers/batching.py) `/score` answers start
with `x-scoregate-batch-size` and `x-scoregate-batch-wait-ms`.
On these three routes every answer carries `x-ms-server-version`, the request ids
(`x-request-id`, `x-ms-request-id`, `x-ms-client-request-id`), `TraceId` when sent, and CORS
headers when enabled. Every error body is JSON `{"message": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from scoring_servers.asgi import read_body
from scoring_servers.azureml.cors import CorsPolicy
from scoring_servers.azureml.results import JSON_HEADERS, Outcome, error_outcome
from scoring_servers.azureml.run_inputs import InputError, build_call
from scoring_servers.azureml.run_signature import RAW, RunSignature
from scoring_servers.azureml.runner import Runner
from scoring_servers.azureml.swagger import SwaggerDocuments
from scoring_servers.batching import Batcher
from scoring_servers.request_ids import RequestIds

if TYPE_CHECKING:  # annotations only: these subscripts need Python 3.9+ at run time
    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    Background = Callable[[], Coroutine[Any, Any, None]]
    Headers = list[tuple[bytes, bytes]]
    BatchItem = tuple[Any, str]  # (raw data, request id), as runner.py takes it

MAX_REQUEST_ID = 100  # azmlinfsrv's limit for the id headers
HTML = b"text/html; charset=utf-8"
NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL manually "
             "please check your spelling and try again.")
NOT_ALLOWED = "The method is not allowed for the requested URL."
NO_BODY_STATUSES = (204, 304)


class ScoringScriptApp:
    __slots__ = ("_runner", "_signature", "_swagger", "_background", "_request_ids", "_cors",
                 "_version_headers", "_batcher")

    def __init__(self, runner: Runner, signature: RunSignature, swagger: SwaggerDocuments,
                 background: Background | None = None, cors: CorsPolicy | None = None,
                 server_version: str | None = None,
                 batcher: Batcher[BatchItem] | None = None) -> None:
        """`batcher`: only for a plain run(raw_data) script that defines run_batch."""
        self._runner = runner
        self._batcher = batcher
        self._signature = signature
        self._swagger = swagger
        self._background = background  # runs while serving (the log flusher)
        self._request_ids = RequestIds()
        self._cors = cors
        self._version_headers: Headers = (
            [] if server_version is None
            else [(b"x-ms-server-version", server_version.encode("latin-1"))])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send, self._background)
            return
        path = scope["path"]
        if "//" in path:  # werkzeug merges repeated slashes: //score is /score
            path = _merge_slashes(path)
        method = scope["method"]
        if path == "/score":
            if method in ("POST", "GET", "OPTIONS", "HEAD"):
                await self._route(scope, receive, send, self._score)
            else:
                await self._plain_error(send, 405, NOT_ALLOWED)
        elif path == "/":
            if method in ("GET", "HEAD", "OPTIONS"):
                await self._route(scope, receive, send, self._health)
            else:
                await self._plain_error(send, 405, NOT_ALLOWED)
        elif path == "/swagger.json":
            if method in ("GET", "HEAD", "OPTIONS"):
                await self._route(scope, receive, send, self._swagger_json)
            else:
                await self._plain_error(send, 405, NOT_ALLOWED)
        else:
            await self._plain_error(send, 404, NOT_FOUND)

    async def _route(self, scope: Scope, receive: Receive, send: Send,
                     handler: Callable[[Scope, Receive, str], Awaitable[Outcome]]) -> None:
        """A route of azmlinfsrv's blueprint: ids checked first, its headers on every answer."""
        common, refused = self._ids(scope["headers"])
        if refused is not None:
            outcome = refused
        else:  # the x-request-id pair is last
            outcome = await handler(scope, receive, common[-1][1].decode("latin-1"))
        extra = common
        if self._cors is not None:
            extra = common + self._cors.headers(scope["method"], scope["headers"])
        await _send(send, outcome, extra)

    def _ids(self, request_headers: Headers) -> tuple[Headers, Outcome | None]:
        """azmlinfsrv's request-id rules (routes.py `_init_headers`): the response headers
        (the x-request-id pair last), and the 431 answer when an id is too long."""
        request_id = client_id = legacy_id = trace_id = b""
        for name, value in request_headers:
            if name == b"x-request-id":
                request_id = value
            elif name == b"x-ms-client-request-id":
                client_id = value
            elif name == b"x-ms-request-id":
                legacy_id = value
            elif name == b"traceid":
                trace_id = value
        if not request_id:
            request_id = self._request_ids.next()
        elif len(request_id) > MAX_REQUEST_ID:
            return self._version_headers, error_outcome(
                431, f"x-request-id must not exceed {MAX_REQUEST_ID} characters")
        if legacy_id:
            client_id = client_id or legacy_id
        else:
            legacy_id = client_id or request_id
        headers = list(self._version_headers)
        if len(legacy_id) > MAX_REQUEST_ID or len(client_id) > MAX_REQUEST_ID:
            headers.append((b"x-request-id", request_id))
            return headers, error_outcome(
                431, f"x-ms-request-id and x-ms-client-request-id must not exceed "
                     f"{MAX_REQUEST_ID} characters")
        headers.append((b"x-ms-request-id", legacy_id))
        if client_id:
            headers.append((b"x-ms-client-request-id", client_id))
        if trace_id:
            headers.append((b"TraceId", trace_id))
        headers.append((b"x-request-id", request_id))
        return headers, None

    async def _score(self, scope: Scope, receive: Receive, request_id: str) -> Outcome:
        method = scope["method"]
        signature = self._signature
        if signature.mode != RAW and method not in ("POST", "GET"):
            if method == "OPTIONS":
                return Outcome(200, b"", ((b"content-type", HTML),
                                          (b"x-ms-run-function-failed", b"False")))
            return error_outcome(405, "Method not allowed")
        body = await read_body(receive)
        try:
            args, kwargs = build_call(signature, scope, body)
        except InputError as exc:
            return error_outcome(exc.status, exc.message)
        if self._batcher is not None:
            return await self._batched(args[0] if args else (kwargs or {})[signature.first],
                                       request_id)
        return await self._runner.score(args, kwargs, request_id)

    async def _batched(self, raw_data: Any, request_id: str) -> Outcome:
        """Through the batcher; its headers go first (where the gateway reads them)."""
        assert self._batcher is not None
        pending = self._batcher.submit((raw_data, request_id))
        outcome = await self._runner.wait(pending.future, request_id)
        return dataclasses.replace(outcome, headers=(*pending.headers(), *outcome.headers))

    async def _health(self, scope: Scope, receive: Receive, request_id: str) -> Outcome:
        if scope["method"] == "OPTIONS":
            return Outcome(200, b"", ((b"content-type", HTML), (b"allow", b"OPTIONS, HEAD, GET")))
        return Outcome(200, b"Healthy", ((b"content-type", HTML),))

    async def _swagger_json(self, scope: Scope, receive: Receive, request_id: str) -> Outcome:
        if scope["method"] == "OPTIONS":
            return Outcome(200, b"", ((b"content-type", HTML), (b"allow", b"OPTIONS, HEAD, GET")))
        versions = parse_qs(scope["query_string"].decode("latin-1")).get("version")
        document = self._swagger.get(versions[0] if versions else None)  # Flask: the first
        if isinstance(document, str):
            return error_outcome(404, document)
        return Outcome(200, document, JSON_HEADERS)

    async def _plain_error(self, send: Send, status: int, message: str) -> None:
        """Outside azmlinfsrv's routes (its Flask app's 404/405): no ids, no CORS."""
        await _send(send, error_outcome(status, message), self._version_headers)


def _merge_slashes(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


async def _send(send: Send, outcome: Outcome, extra: Headers) -> None:
    headers = list(outcome.headers)
    if outcome.status in NO_BODY_STATUSES:
        body = b""
    else:
        body = outcome.body
        headers.append((b"content-length", str(len(body)).encode()))
    if outcome.exec_ms is not None:
        headers.append((b"x-ms-run-fn-exec-ms", f"{outcome.exec_ms:.3f}".encode()))
    headers.extend(extra)
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, background: Background | None) -> None:
    """init() ran before the server started; only the background task starts and stops here."""
    task: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if background is not None:
                task = asyncio.create_task(background())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await send({"type": "lifespan.shutdown.complete"})
            return

"""The HTTP side: a plain ASGI callable, kept small because every request goes through it.

Routes (as azureml-inference-server-http serves an MLflow model):
- `GET /` → `Healthy`: the process only serves once the model is loaded;
- `POST /score` → the model's predictions (see `payload` for the formats);
- `GET /swagger.json?version=2|3|3.1`: generated from the model's signature.
Every error body is JSON `{"message": ...}`. Answers to /score carry `x-request-id` (the
client's, or a fresh one) and `x-ms-run-fn-exec-ms`, as the azureml server's do; with
batching they start with `x-scoregate-batch-size` and `x-scoregate-batch-wait-ms` (see
scoring_servers/batching.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from scoring_servers.asgi import read_body
from scoring_servers.batching import Batcher
from scoring_servers.mlflow.runner import Outcome, Runner, error_body
from scoring_servers.mlflow.swagger import SwaggerDocuments
from scoring_servers.request_ids import RequestIds

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    from scoring_servers.mlflow.runner import BatchItem

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
MAX_REQUEST_ID = 100  # azmlinfsrv's limit for x-request-id


class MlflowModelApp:
    __slots__ = ("_runner", "_swagger", "_request_ids", "_batcher")

    def __init__(self, runner: Runner, swagger: SwaggerDocuments,
                 batcher: Batcher[BatchItem] | None = None) -> None:
        self._runner = runner
        self._batcher = batcher
        self._swagger = swagger
        self._request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/score":
            if method == "POST":
                await self._score(scope, await read_body(receive), send)
            else:
                await _error(send, 405, f"Method {method} not allowed on /score (use POST)")
        elif path == "/":
            if method == "GET":
                await _respond(send, 200, b"Healthy", b"text/plain; charset=utf-8")
            else:
                await _error(send, 405, f"Method {method} not allowed on / (use GET)")
        elif path == "/swagger.json" and method == "GET":
            await self._swagger_json(scope, send)
        else:
            await _error(send, 404, f"Not found: {method} {path}")

    async def _score(self, scope: Scope, body: bytes, send: Send) -> None:
        request_id = b""
        client_request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"x-ms-client-request-id":
                client_request_id = value
        if len(request_id) > MAX_REQUEST_ID or len(client_request_id) > MAX_REQUEST_ID:
            await _error(send, 431, f"x-request-id and x-ms-client-request-id must not exceed "
                                    f"{MAX_REQUEST_ID} characters")
            return
        if not request_id:
            request_id = self._request_ids.next()
        request_text = request_id.decode("latin-1")
        if self._batcher is None:
            outcome = await self._runner.score(body, request_text)
            headers = _score_headers(outcome, request_id, client_request_id)
        else:  # the batch headers first: the gateway reads them there
            pending = self._batcher.submit((body, request_text))
            outcome = await self._runner.wait(pending.future, request_text)
            headers = pending.headers() + _score_headers(outcome, request_id, client_request_id)
        await send({"type": "http.response.start", "status": outcome.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": outcome.body})

    async def _swagger_json(self, scope: Scope, send: Send) -> None:
        versions = parse_qs(scope["query_string"].decode("latin-1")).get("version")
        version = versions[-1] if versions else None
        document = self._swagger.get(version)
        if document is None:
            await _error(send, 404, f"Swagger version [{version}] is not valid. "
                                    "Supported versions: [2, 3, 3.1].")
        else:
            await _respond(send, 200, document, JSON)


def _score_headers(outcome: Outcome, request_id: bytes,
                   client_request_id: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", JSON),
        (b"content-length", str(len(outcome.body)).encode()),
        (b"x-ms-run-fn-exec-ms", f"{outcome.exec_ms:.3f}".encode()),
        (b"x-request-id", request_id),
    ]
    if client_request_id:
        headers.append((b"x-ms-client-request-id", client_request_id))
    return headers


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str) -> None:
    await _respond(send, status, error_body(message), JSON)


async def _lifespan(receive: Receive, send: Send) -> None:
    """The model was loaded before the server started: nothing to do but acknowledge."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""`ScoringApp` driven in-process as an ASGI callable (its lifespan, in-flight counts and the
request counts a rollout window reads)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway import (
    ROLE_DIRECT,
    ROLE_LIVE,
    GatewayOptions,
    ScoringApp,
    SnapshotHolder,
    request_counts,
)
from gateway.standalone import snapshot_from
from tests.gateway.harness import KEY, deployment, endpoint, start_backend
from tests.support.processes import ProcessGroup


class Lifespan:
    """Runs the app's lifespan protocol the way a server does."""

    def __init__(self, app: ScoringApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> Lifespan:
        self.task = asyncio.create_task(self.app({"type": "lifespan"}, self.inbox.get,
                                                 self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"
        await self.task


async def call(app: ScoringApp, path: str, body: bytes = b"{}",
               deployment: bytes | None = None) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", f"Bearer {KEY}".encode()),
               (b"content-type", b"application/json")]
    if deployment is not None:
        headers.append((b"azureml-model-deployment", deployment))
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
             "headers": headers}
    await app(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


def test_in_flight_counts_requests_until_answered(processes: ProcessGroup, tmp_path: Path) -> None:
    slow = start_backend(processes, tmp_path, "blue", delay=0.5)
    snapshot = snapshot_from({"endpoints": [endpoint("main", [deployment("blue", slow)],
                                                     {"blue": 100})]})
    app = ScoringApp(SnapshotHolder(snapshot), GatewayOptions(metrics=False, access_log=False))

    async def scenario() -> None:
        async with Lifespan(app):
            requests = [asyncio.create_task(call(app, "/score")) for _ in range(3)]
            for _ in range(200):
                if app.in_flight("blue-0") == 3:
                    break
                await asyncio.sleep(0.01)
            assert app.in_flight("blue-0") == 3
            results = await asyncio.gather(*requests)
            assert [status for status, _ in results] == [200, 200, 200]
            assert orjson.loads(results[0][1])["name"] == "blue"
            assert app.in_flight("blue-0") == 0
            status, body = await call(app, "/nowhere")
            assert status == 404 and b"message" in body

    asyncio.run(scenario())


def test_request_counts_by_role_and_status(processes: ProcessGroup, tmp_path: Path) -> None:
    """The read API of rollout windows: cumulative counts and latency buckets per role."""
    backend = start_backend(processes, tmp_path, "counted")
    snapshot = snapshot_from({"endpoints": [endpoint("counts", [deployment("counted", backend)],
                                                     {"counted": 100})]})
    app = ScoringApp(SnapshotHolder(snapshot), GatewayOptions(access_log=False))
    before = request_counts("counts", "counted", ROLE_LIVE)

    async def scenario() -> None:
        async with Lifespan(app):
            for _ in range(3):
                assert (await call(app, "/score"))[0] == 200
            assert (await call(app, "/score", deployment=b"counted"))[0] == 200

    asyncio.run(scenario())
    live = request_counts("counts", "counted", ROLE_LIVE)
    assert live.requests - before.requests == 3 and live.by_status.get(200, 0) >= 3
    assert live.latency_buckets[-1][0] == float("inf")
    assert live.latency_buckets[-1][1] == live.requests
    assert request_counts("counts", "counted", ROLE_DIRECT).requests >= 1
    assert request_counts("counts", "nowhere", ROLE_LIVE).latency_buckets == ()

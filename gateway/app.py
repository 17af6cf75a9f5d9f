"""`ScoringApp`: the scoring listener as one plain ASGI callable.

Routes (docs/architecture.md): `POST /score`, `POST /endpoints/{name}/score`,
`GET /swagger.json`, `GET /endpoints/{name}/swagger.json`, `GET /metrics`, `GET /healthz`.
Lifespan opens and closes the upstream pools and cancels mirror copies still running.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from gateway.admission import Admission
from gateway.auth import check_authorization
from gateway.errors import JSON_HEADERS, GatewayError, not_found, printable, unauthorized
from gateway.http.asgi import Receive, Scope, Send, header, send_response
from gateway.http.pools import LIVE_POOL, Upstream, UpstreamError, rest_of
from gateway.picking import endpoint_for
from gateway.proxy import ScoreHandler
from gateway.shadow.mirror import Mirror
from gateway.shadow.pairing import ComparisonReport, Comparisons
from gateway.shadow.rules import CompareSettings
from gateway.snapshot import EndpointRoute, RoutingSnapshot, SnapshotHolder
from gateway.telemetry.access_log import AccessLog
from gateway.telemetry.metrics import Recorders, render

_PREFIX = "/endpoints/"
_MAX_SWAGGER_BYTES = 16 * 1024 * 1024  # an OpenAPI document is held whole: bound it


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    metrics: bool = True
    metrics_route: bool = True  # serve GET /metrics here (False: the admin listener does)
    access_log: bool = True
    compare: CompareSettings = CompareSettings()  # shadow comparison of mirror copies
    worker: int | None = None  # this process's index in a `serve --workers N` fleet


MetricsSource = Callable[[], Awaitable[tuple[bytes, str]]]


def _host(scope: Scope) -> str | None:
    value = header(scope["headers"], b"host")
    return value.decode("latin-1") if value is not None else None


def _several_endpoints(snapshot: RoutingSnapshot) -> str:
    if not snapshot.endpoints:
        return "no endpoint is configured"
    return ("this gateway serves several endpoints: use /endpoints/{name}/score "
            "or a Host header starting with '{name}.'")


class ScoringApp:
    """`admission` and `metrics_source` are a fleet worker's (gateway/fleet/worker.py): its
    in-flight counts shared with the other workers, and `/metrics` summed over all of them."""

    def __init__(self, holder: SnapshotHolder, options: GatewayOptions = GatewayOptions(),
                 admission: Admission | None = None,
                 metrics_source: MetricsSource | None = None) -> None:
        self.holder = holder
        self.options = options
        self._random = random.Random()
        self._admission = admission or Admission()
        self._metrics_source = metrics_source
        self._upstream = Upstream(self._admission)
        recorders = Recorders(options.metrics)
        access_log = AccessLog(options.access_log)
        self._mirror = Mirror(self._upstream, self._admission, recorders, access_log,
                              self._random.random, Comparisons(options.compare, options.metrics))
        self._score = ScoreHandler(self._upstream, self._admission, self._mirror, recorders,
                                   access_log, self._random, holder)

    def in_flight(self, instance_id: str) -> int:
        """Requests (mirror copies included) in flight to that instance; the supervisor
        drains with it."""
        return self._admission.instance(instance_id)

    def demand(self, endpoint: str, deployment: str) -> int:
        """Requests in flight to that deployment (live, direct, mirror) plus those waiting for
        its first instance: what the autoscaler samples, read in memory (no metrics scrape)."""
        return self._admission.demand((endpoint, deployment))

    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport:
        """Shadow comparisons of mirror copies sent to that deployment: counts, agreement,
        memory and the last mismatching pairs (the admin API's `.../compare`)."""
        return self._mirror.comparisons.report(endpoint, deployment)

    def compared(self) -> list[tuple[str, str]]:
        """(endpoint, deployment) of every deployment whose mirror copies were compared."""
        return self._mirror.comparisons.keys()

    def comparison_counts(self, endpoint: str, deployment: str) -> dict[str, int]:
        """Comparisons so far by outcome; cheap, for a rollout to diff over its window."""
        return self._mirror.comparisons.counts(endpoint, deployment)

    async def startup(self) -> None:
        await self._upstream.open()

    async def shutdown(self) -> None:
        await self._mirror.close()
        await self._upstream.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:  # report it to the server, which then exits
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        snapshot = self.holder.current
        if path == "/score" or (path.startswith(_PREFIX) and path.endswith("/score")):
            if method != "POST":
                return await _error(send, GatewayError(405, f"use POST for {path}"))
            endpoint, missing = self._endpoint(snapshot, scope, path, "/score")
            return await self._score.handle(snapshot, endpoint, scope, receive, send, missing)
        if path == "/swagger.json" or (path.startswith(_PREFIX) and path.endswith("/swagger.json")):
            if method != "GET":
                return await _error(send, GatewayError(405, f"use GET for {path}"))
            endpoint, missing = self._endpoint(snapshot, scope, path, "/swagger.json")
            return await self._swagger(endpoint, missing, scope, send)
        if path == "/metrics" and method == "GET" and self.options.metrics_route:
            source = self._metrics_source
            body, content_type = render() if source is None else await source()
            return await send_response(send, 200, [(b"content-type", content_type.encode())], body)
        if path == "/healthz" and method == "GET":
            return await send_response(send, 200, list(JSON_HEADERS), self._health(snapshot))
        await _error(send, not_found(f"no route {method} {printable(path, 200)}; scoring is "
                                     "POST /score or POST /endpoints/{name}/score"))

    def _health(self, snapshot: RoutingSnapshot) -> bytes:
        """A fleet worker also says which one answered, so its snapshot version can be followed."""
        health: dict[str, object] = {"status": "ok", "snapshot_version": snapshot.version}
        if self.options.worker is not None:
            health["worker"] = self.options.worker
            health["pid"] = os.getpid()
        return orjson.dumps(health)

    def _endpoint(self, snapshot: RoutingSnapshot, scope: Scope, path: str,
                  suffix: str) -> tuple[EndpointRoute | None, str]:
        """The endpoint, or None and why (the message is built only then)."""
        if path == suffix:
            # One endpoint serves plain /score whatever the Host: skip scanning for it then.
            endpoint = snapshot.default_endpoint or endpoint_for(snapshot, _host(scope))
            return endpoint, "" if endpoint is not None else _several_endpoints(snapshot)
        name = path[len(_PREFIX):-len(suffix)]
        endpoint = snapshot.endpoints.get(name)
        return endpoint, "" if endpoint is not None else f"endpoint '{printable(name)}' not found"

    async def _swagger(self, endpoint: EndpointRoute | None, missing: str, scope: Scope,
                       send: Send) -> None:
        """The OpenAPI document of one ready instance of a live deployment, proxied as is."""
        try:
            if endpoint is None:
                raise not_found(missing)
            authorization = header(scope["headers"], b"authorization")
            if not check_authorization(endpoint, authorization, time.time()):
                raise unauthorized()
            ordered = [endpoint.deployments[n] for n, _ in endpoint.traffic
                       if n in endpoint.deployments]
            live = [d for d in ordered + list(endpoint.deployments.values()) if d.instances]
            if not live:
                raise GatewayError(503, f"endpoint '{endpoint.name}' has no ready instance")
            instance = live[0].instances[0]
            query = scope.get("query_string", b"").decode("latin-1")
            try:
                answer = await self._upstream.send(
                    LIVE_POOL, instance, "GET", "/swagger.json" + (f"?{query}" if query else ""),
                    None, [], live[0].request_timeout_s)
                rest, size = await rest_of(answer, _MAX_SWAGGER_BYTES)
            except UpstreamError as error:
                raise GatewayError(502, f"swagger.json could not be fetched: {error}") from None
            if len(answer.body) + size > _MAX_SWAGGER_BYTES:
                raise GatewayError(502, f"swagger.json is larger than {_MAX_SWAGGER_BYTES} bytes")
        except GatewayError as error:
            return await _error(send, error)
        content_type = header(answer.headers, b"content-type")
        headers = [(b"content-type", b"application/json" if content_type is None else content_type)]
        await send_response(send, answer.status, headers, answer.body + rest)


async def _error(send: Send, error: GatewayError) -> None:
    await send_response(send, error.status, error.response_headers(), error.body())

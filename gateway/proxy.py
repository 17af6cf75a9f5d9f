"""POST /score: snapshot → auth → body → deployment → instance → the model's answer.

`ScoreHandler.handle` is the hot path. Every failure is a `GatewayError` raised by one small
step and answered as JSON in one place, with the metrics and the access-log line of the
request whatever its outcome.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass

from gateway.admission import Admission
from gateway.auth import check_authorization
from gateway.cold_start import warm
from gateway.errors import GatewayError, not_found, printable, unauthorized
from gateway.http.asgi import (
    Headers,
    Receive,
    Scope,
    Send,
    declared_length,
    header,
    read_body,
    send_response,
    stream_response,
)
from gateway.http.pools import (
    LIVE_POOL,
    Answer,
    Upstream,
    UpstreamFailed,
    UpstreamRefused,
    UpstreamTimeout,
)
from gateway.picking import TrafficTable, least_in_flight, mirror_due
from gateway.roles import ROLE_DIRECT, ROLE_LIVE
from gateway.shadow.mirror import Mirror
from gateway.snapshot import (
    DeploymentRoute,
    EndpointRoute,
    InstanceRoute,
    RoutingSnapshot,
    SnapshotHolder,
)
from gateway.telemetry.access_log import AccessLog, AccessRecord
from gateway.telemetry.instances import count_answer
from gateway.telemetry.metrics import BATCH_SIZE_HEADER, BATCH_WAIT_HEADER, NONE, Recorders

DEPLOYMENT_HEADER = b"azureml-model-deployment"
CLIENT_ID_HEADER = b"x-ms-client-request-id"
_CLIENT_ID = re.compile(rb"[A-Za-z0-9_-]+")
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade"})
# Not forwarded to the model: hop-by-hop headers, the endpoint credential, what we recompute
# (Host is the upstream's own, as nginx's default `proxy_set_header Host $proxy_host`).
_DROP_REQUEST = _HOP_BY_HOP | {b"authorization", b"content-length", b"expect", b"host",
                               b"x-request-id", b"x-scoregate-mirror", b"x-forwarded-for",
                               b"x-forwarded-proto"}
# Not passed back to the client: hop-by-hop headers, and what we set ourselves.
# (The batch headers are recorded as metrics, not shown: docs/batching.md.)
_DROP_RESPONSE = _HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id",
                                DEPLOYMENT_HEADER, CLIENT_ID_HEADER, BATCH_SIZE_HEADER,
                                BATCH_WAIT_HEADER}
_CLOSE = (b"connection", b"close")
_HTTP, _HTTPS = (b"x-forwarded-proto", b"http"), (b"x-forwarded-proto", b"https")

MODEL_MESSAGE_CHARS = 4000  # of a model's non-2xx answer, quoted in the 424


def fast_uuid4(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (uuid.uuid4 costs a syscall each time)."""
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def connection_named(value: bytes) -> frozenset[bytes]:
    """The header names a `Connection` header lists (RFC 9110 §7.6.1): hop-by-hop, dropped."""
    return frozenset(token.strip().lower() for token in value.split(b",")) - {b"", b"close",
                                                                               b"keep-alive"}


def without_named(headers: Headers, connection: bytes | None) -> Headers:
    """`headers` minus those the `Connection` value names; the same list when it names none."""
    if connection is None:
        return headers
    named = connection_named(connection)
    return [pair for pair in headers if pair[0] not in named] if named else headers


def forwarded_for(previous: bytes | None, client: tuple[str, int] | None) -> bytes:
    """nginx's `$proxy_add_x_forwarded_for`: the client's list with the client appended."""
    address = client[0].encode("ascii") if client else b"unknown"
    return address if previous is None else previous + b", " + address


def response_headers(received: tuple[tuple[bytes, bytes], ...]) -> Headers:
    """The upstream's headers a client may see: hop-by-hop ones, those its `Connection`
    names and those we set ourselves left out."""
    connection = None
    kept: Headers = []
    for pair in received:
        name = pair[0]
        if name not in _DROP_RESPONSE:
            kept.append(pair)
        elif name == b"connection":
            connection = pair[1]
    return without_named(kept, connection)


def client_request_id(value: bytes | None) -> bytes | None:
    """The client's request id when valid (letters, digits, '-', '_'), cut to 40 characters."""
    if value is None or not _CLIENT_ID.fullmatch(value):
        return None
    return value[:40]


@dataclass(slots=True)  # one per request: a frozen __init__ costs ~0.5 µs more
class Incoming:
    """What the hot path needs from the request headers, collected in one pass."""

    authorization: bytes | None
    deployment: bytes | None
    client_id: bytes | None
    content_length: bytes | None
    forward: Headers  # as received (uvicorn lower-cases names), minus _DROP_REQUEST, plus ours

    @classmethod
    def parse(cls, scope: Scope, request_id_header: tuple[bytes, bytes]) -> Incoming:
        authorization = deployment = client_id = content_length = None
        connection = forwarded = None
        forward: Headers = []
        for name, value in scope["headers"]:
            if name not in _DROP_REQUEST:
                if name == DEPLOYMENT_HEADER:
                    deployment = value
                elif name == CLIENT_ID_HEADER:
                    client_id = value
                forward.append((name, value))
            elif name == b"authorization":
                authorization = value
            elif name == b"content-length":
                content_length = value
            elif name == b"connection":
                connection = value
            elif name == b"x-forwarded-for":
                forwarded = value if forwarded is None else forwarded + b", " + value
        forward = without_named(forward, connection)
        forward += (request_id_header,
                    (b"x-forwarded-for", forwarded_for(forwarded, scope.get("client"))),
                    _HTTPS if scope.get("scheme") == "https" else _HTTP)
        return cls(authorization, deployment, client_id, content_length, forward)


class TrafficTables:
    """Cumulative traffic tables of the current snapshot, rebuilt when a new one is published."""

    def __init__(self) -> None:
        self._snapshot: RoutingSnapshot | None = None
        self._tables: dict[str, TrafficTable] = {}

    def get(self, snapshot: RoutingSnapshot, endpoint: EndpointRoute) -> TrafficTable:
        if snapshot is not self._snapshot:
            self._tables = {name: TrafficTable.build(route.traffic)
                            for name, route in snapshot.endpoints.items()}
            self._snapshot = snapshot
        return self._tables.get(endpoint.name) or TrafficTable.build(endpoint.traffic)


class ScoreHandler:
    def __init__(self, upstream: Upstream, admission: Admission, mirror: Mirror,
                 recorders: Recorders, access_log: AccessLog,
                 rng: random.Random | None = None, holder: SnapshotHolder | None = None) -> None:
        """`holder`: where a request to a deployment scaled to zero waits for its first
        instance (None: such a request gets a 503 at once)."""
        self._holder = holder
        self._upstream = upstream
        self._admission = admission
        self._mirror = mirror
        self._recorders = recorders
        self._access_log = access_log
        rng = rng or random.Random()
        self._random = rng.random
        self._bits = rng.getrandbits
        self._tables = TrafficTables()

    async def handle(self, snapshot: RoutingSnapshot, endpoint: EndpointRoute | None,
                     scope: Scope, receive: Receive, send: Send,
                     missing_endpoint: str = "") -> None:
        started = time.perf_counter()
        request_id = fast_uuid4(self._bits(128))
        request_id_header = (b"x-request-id", request_id.encode("ascii"))  # to model and client
        incoming = Incoming.parse(scope, request_id_header)
        client_id = client_request_id(incoming.client_id)
        deployment_label = NONE
        role = ROLE_LIVE if incoming.deployment is None else ROLE_DIRECT
        body = b""
        mirrored = False  # a live request whose body was read: a copy may be due
        rest = None  # the rest of a large answer, still arriving
        try:
            if endpoint is None:
                raise not_found(missing_endpoint)
            if not check_authorization(endpoint, incoming.authorization, time.time()):
                raise unauthorized()
            limit = snapshot.settings.max_body_bytes
            declared_length(incoming.content_length, limit)
            body = await read_body(receive, limit, scope)
            deployment, role = self._choose(snapshot, endpoint, incoming.deployment)
            deployment_label = deployment.name
            mirrored = role == ROLE_LIVE and endpoint.mirror is not None
            answer = await self._forward(deployment, role, body, incoming.forward)
        except GatewayError as error:
            headers = error.response_headers()
            status, out, model_status = error.status, error.body(), error.model_status
            if status == 413:  # the rest of the body is still coming: never read it as a request
                headers.append(_CLOSE)
        else:
            headers = response_headers(answer.headers)
            status, out, model_status = answer.status, answer.body, answer.status
            rest = answer.rest
        if deployment_label != NONE:
            headers.append((DEPLOYMENT_HEADER, deployment_label.encode("latin-1")))
        headers.append(request_id_header)
        if client_id is not None:
            headers.append((CLIENT_ID_HEADER, client_id))
        if rest is None:
            await send_response(send, status, headers, out)
            sent = len(out)
        else:  # a large answer, sent as it arrives
            sent, _ = await stream_response(send, scope, status, headers, out, rest,
                                            header(answer.headers, b"content-length"))
        if mirrored and endpoint is not None:  # after the answer: never competes with it
            self._maybe_mirror(snapshot, endpoint, body, incoming.forward, request_id,
                               model_status, out, rest is None)
        self._record(endpoint, deployment_label, role, status, model_status, started,
                     request_id, client_id, len(body), sent)

    def _choose(self, snapshot: RoutingSnapshot, endpoint: EndpointRoute,
                named: bytes | None) -> tuple[DeploymentRoute, str]:
        if named is not None:
            name = named.decode("latin-1").strip()
            deployment = endpoint.deployments.get(name)
            if deployment is None:
                raise not_found(f"deployment '{printable(name)}' not found in endpoint "
                                f"'{endpoint.name}'")
            return deployment, ROLE_DIRECT
        picked = self._tables.get(snapshot, endpoint).pick(self._random())
        deployment = endpoint.deployments.get(picked) if picked is not None else None
        if deployment is None:
            raise not_found(f"endpoint '{endpoint.name}' has no deployment with positive "
                            "traffic; set traffic, or name a deployment with the "
                            "'azureml-model-deployment' header")
        return deployment, ROLE_LIVE

    def _maybe_mirror(self, snapshot: RoutingSnapshot, endpoint: EndpointRoute, body: bytes,
                      forward: Headers, request_id: str, live_status: int | None,
                      live_body: bytes, whole: bool) -> None:
        """Submit the copy when the mirror share draws it; a copy sampled for comparison gets
        the live answer (the model's status, None when it gave none) at once; a streamed
        answer (`whole` False) is never held, only known to be too large to compare."""
        name = mirror_due(endpoint.mirror, self._random())
        target = endpoint.deployments.get(name) if name is not None else None
        if target is None:
            return
        pairing = self._mirror.submit(target, snapshot.settings, body, forward, request_id)
        if pairing is not None:  # judged later, off this handler
            pairing.live(live_status, live_body, whole)

    async def _forward(self, deployment: DeploymentRoute, role: str, body: bytes,
                       forward: Headers) -> Answer:
        if not deployment.instances:
            if not deployment.scales_from_zero or self._holder is None:
                raise GatewayError(503, f"deployment '{deployment.name}' has no ready instance")
            deployment = await warm(self._holder, self._admission, deployment)
        key = (deployment.endpoint, deployment.name)
        admission = self._admission
        admission.admit(deployment, key)  # 429 when full
        if self._recorders.enabled:
            self._recorders.watch_in_flight(key, admission.deployment)
        try:
            answer = await self._send(deployment, body, forward)
        finally:
            admission.release(key)
        if self._recorders.enabled:
            recorder = self._recorders.recorder(key[0], key[1], role)
            if answer.headers and answer.headers[0][0] == BATCH_SIZE_HEADER:
                recorder.batched(answer.headers)
            if 200 <= answer.status < 300:
                recorder.upstream_seconds.observe(answer.seconds)
        if not 200 <= answer.status < 300:
            if answer.rest is not None:  # too large to quote: drop it unread
                answer.rest.close()
            raise model_error(deployment, answer)
        return answer

    async def _send(self, deployment: DeploymentRoute, body: bytes,
                    headers: Headers) -> Answer:
        in_flight = self._admission.instances
        instance = least_in_flight(deployment.instances, in_flight, self._random())
        if instance is None:
            raise GatewayError(503, f"deployment '{deployment.name}' has no ready instance")
        timeout = deployment.request_timeout_s
        try:
            try:
                return await self._send_to(instance, body, headers, timeout)
            except UpstreamRefused:
                other = least_in_flight(deployment.instances, in_flight, self._random(),
                                        exclude=instance.id)
                if other is None:
                    raise
                return await self._send_to(other, body, headers, timeout)
        except UpstreamTimeout:
            raise GatewayError(408, f"deployment '{deployment.name}' did not answer within "
                                    f"{timeout:g} s (request_timeout_ms)") from None
        except (UpstreamRefused, UpstreamFailed) as error:
            raise GatewayError(502, f"deployment '{deployment.name}' could not be reached: "
                                    f"{error}") from None

    async def _send_to(self, instance: InstanceRoute, body: bytes, headers: Headers,
                       timeout: float) -> Answer:
        """One attempt on one instance, tallied per instance (a refused connection is not an
        answer: the request goes to another instance)."""
        started = time.perf_counter()
        try:
            answer = await self._upstream.send(LIVE_POOL, instance, "POST", instance.score_path,
                                               body, headers, timeout)
        except UpstreamTimeout:
            count_answer(instance.url, 408, time.perf_counter() - started)
            raise
        except UpstreamFailed:
            count_answer(instance.url, 502, time.perf_counter() - started)
            raise
        count_answer(instance.url, answer.status, answer.seconds)
        return answer

    def _record(self, endpoint: EndpointRoute | None, deployment: str, role: str, status: int,
                model_status: int | None, started: float, request_id: str,
                client_id: bytes | None, bytes_in: int, bytes_out: int) -> None:
        seconds = time.perf_counter() - started
        endpoint_label = endpoint.name if endpoint is not None else NONE
        if self._recorders.enabled:
            self._recorders.recorder(endpoint_label, deployment, role).answered(
                status, model_status, seconds, bytes_in, bytes_out)
        if self._access_log.enabled:
            self._access_log.write(AccessRecord(
                request_id, client_id.decode("ascii") if client_id else None, endpoint_label,
                deployment, role, status, model_status, seconds * 1000.0, bytes_in, bytes_out))


def model_error(deployment: DeploymentRoute, answer: Answer) -> GatewayError:
    """424 for a model that answered non-2xx, with its status and reason in headers (as Azure).

    The model's own message is quoted (its first `MODEL_MESSAGE_CHARS`, cut rather than left
    out): MLflow's schema errors name the columns and the expected schema, often past 1000
    characters, and they are what the client needs to fix its request."""
    reason = printable(answer.reason, 100)
    detail = ""
    if answer.body:
        text = answer.body[:MODEL_MESSAGE_CHARS * 4].decode("utf-8", "replace")
        detail = ": " + printable(text, MODEL_MESSAGE_CHARS)
    headers = ((b"ms-azureml-model-error-statuscode", str(answer.status).encode("ascii")),
               (b"ms-azureml-model-error-reason", reason.encode("ascii")))
    return GatewayError(424, f"the model in deployment '{deployment.name}' answered "
                             f"{answer.status} {reason}{detail}", headers, answer.status)

"""Fire-and-forget mirror copies, bounded: the client never waits for the shadow.

The proxy submits a copy once the client has its answer, so a copy never competes with the
request that caused it. A copy runs as its own task on the mirror pool with the mirror
timeout. Tasks are held in a set (so they are not garbage-collected mid-flight) and dropped
from it when done. Over the bound, a copy is dropped and counted, never queued; the bound is
tested first, so a dropped copy costs one counter increment and allocates nothing. A copy
sampled for shadow comparison hands its answer to its `Pairing` (gateway/shadow/pairing.py),
whatever happens to it. Of a large answer (streamed past 64 KiB) a copy reads only what the
comparison can use (`--compare-max-body-kb` + 1 bytes, nothing when not sampled) and drops the
connection: a shadow answering 10 MB costs the gateway no more than one answering 100 KB.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.admission import Admission
from gateway.http.asgi import Headers
from gateway.http.pools import MIRROR_POOL, Upstream, UpstreamError, UpstreamTimeout, rest_of
from gateway.picking import least_in_flight
from gateway.roles import ROLE_MIRROR
from gateway.shadow.pairing import Comparisons, Pairing
from gateway.snapshot import DeploymentRoute, GatewaySettings
from gateway.telemetry.access_log import AccessLog, AccessRecord
from gateway.telemetry.metrics import Recorders

MIRROR_HEADER = (b"x-scoregate-mirror", b"1")


class Mirror:
    def __init__(self, upstream: Upstream, admission: Admission, recorders: Recorders,
                 access_log: AccessLog, draw: Callable[[], float],
                 comparisons: Comparisons | None = None) -> None:
        self._upstream = upstream
        self._admission = admission
        self.comparisons = comparisons or Comparisons(metrics_enabled=recorders.enabled)
        self._recorders = recorders
        self._access_log = access_log
        self._draw = draw
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, deployment: DeploymentRoute, settings: GatewaySettings, body: bytes,
               forward: Headers, request_id: str) -> Pairing | None:
        """Start a copy now, or drop it when `mirror_max_in_flight` copies are running.
        `forward` is what the live request was sent with, its x-request-id included (left
        unchanged). Returns the copy's pairing when it is sampled for comparison: the caller
        hands it the live answer."""
        endpoint, name = deployment.endpoint, deployment.name
        if len(self._tasks) >= settings.mirror_max_in_flight:
            self._recorders.mirror(endpoint, name, "dropped")
            return None
        headers = [*forward, MIRROR_HEADER]
        self._recorders.mirror(endpoint, name, "sent")
        pairing = self.comparisons.start(endpoint, name, request_id, self._draw())
        task = asyncio.get_running_loop().create_task(
            self._copy(deployment, settings.mirror_timeout_s, body, headers, request_id,
                       pairing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return pairing

    async def _copy(self, deployment: DeploymentRoute, timeout_s: float, body: bytes,
                    headers: Headers, request_id: str,
                    pairing: Pairing | None = None) -> None:
        started = time.perf_counter()
        answered: tuple[int | None, bytes] = (None, b"")
        endpoint, name = deployment.endpoint, deployment.name
        status, model_status, size, outcome = 502, None, 0, "failed"
        admission = self._admission
        key = (endpoint, name)
        if self._recorders.enabled:
            self._recorders.watch_in_flight(key, admission.deployment)
        instance = least_in_flight(deployment.instances, admission.instances, self._draw())
        if instance is not None:
            admission.start_mirror(key)
            try:
                answer = await self._upstream.send(MIRROR_POOL, instance, "POST",
                                                   instance.score_path, body, headers, timeout_s)
                kept, size = answer.body, len(answer.body)
                if answer.rest is not None:  # a large answer: read what comparison can use
                    wanted = pairing is not None and 200 <= answer.status < 300
                    need = max(self.comparisons.settings.max_body_bytes + 1 - size, 0)
                    more, more_size = await rest_of(answer, need if wanted else 0)
                    kept, size = kept + more, size + more_size
                model_status = status = answer.status
                answered = (answer.status, kept)  # past max_body_bytes: never held, oversize
                outcome = "completed" if 200 <= answer.status < 300 else "failed"
                if self._recorders.enabled:
                    self._recorders.recorder(endpoint, name, ROLE_MIRROR).upstream_seconds.observe(
                        answer.seconds)
            except UpstreamTimeout:
                status = 408
            except UpstreamError:
                status = 502
            finally:
                admission.end_mirror(key)
                if pairing is not None:
                    pairing.shadow(*answered)
        else:
            status = 503
            if pairing is not None:
                pairing.shadow(None, b"")
        self._finish(deployment, request_id, outcome, status, model_status, started, len(body),
                     size)

    def _finish(self, deployment: DeploymentRoute, request_id: str, outcome: str, status: int,
                model_status: int | None, started: float, bytes_in: int, bytes_out: int) -> None:
        seconds = time.perf_counter() - started
        endpoint, name = deployment.endpoint, deployment.name
        self._recorders.mirror(endpoint, name, outcome)
        if self._recorders.enabled:
            self._recorders.recorder(endpoint, name, ROLE_MIRROR).answered(
                status, model_status, seconds, bytes_in, bytes_out)
        self._access_log.write(AccessRecord(
            request_id, None, endpoint, name, ROLE_MIRROR, status, model_status,
            seconds * 1000.0, bytes_in, bytes_out))

    async def close(self) -> None:
        """Cancel the copies still running (at shutdown), and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""Fire-and-forget mirror copies, bounded: the client never waits for the shadow.

The proxy submits a copy once the client has its answer, so a copy never competes with the
request that caused it. Copies are sent in batches, `BATCH_S` after the first of a batch was
submitted: a shadow that is mostly idle (a slow model, a small share) has to be woken by the
kernel for each write, and on a VM that wake-up costs the writer 3–4× a write to a busy
peer; one wake-up per batch makes a copy cost about what a live request's write costs.

A copy runs as its own task on the mirror pool with the mirror timeout. Tasks are held in a
set (so they are not garbage-collected mid-flight) and dropped from it when done. Over the
bound (copies waiting for their batch and copies running), a copy is dropped and counted,
never queued; the bound is tested first, so a dropped copy costs one counter increment and
allocates nothing. A copy sampled for shadow comparison hands its answer to its `Pairing`
(gateway/comparisons.py), whatever happens to it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from gateway.access_log import AccessLog, AccessRecord
from gateway.comparisons import Comparisons, Pairing
from gateway.http_io import Headers
from gateway.metrics import Recorders
from gateway.picking import least_in_flight
from gateway.snapshot import DeploymentRoute, GatewaySettings
from gateway.upstream import MIRROR, Upstream, UpstreamError, UpstreamTimeout

MIRROR_HEADER = (b"x-scoregate-mirror", b"1")
BATCH_S = 0.01  # a copy waits at most this long for the others of its batch


@dataclass(frozen=True, slots=True)
class Copy:
    """One accepted copy, waiting for its batch to be sent."""

    deployment: DeploymentRoute
    timeout_s: float
    body: bytes
    headers: Headers
    request_id: str
    pairing: Pairing | None


class Mirror:
    def __init__(self, upstream: Upstream, recorders: Recorders, access_log: AccessLog,
                 draw: Callable[[], float], comparisons: Comparisons | None = None) -> None:
        self._upstream = upstream
        self.comparisons = comparisons or Comparisons(metrics_enabled=recorders.enabled)
        self._recorders = recorders
        self._access_log = access_log
        self._draw = draw
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch: list[Copy] = []
        self._batch_timer: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        """Copies accepted and not finished: waiting for their batch, or running."""
        return len(self._tasks) + len(self._batch)

    def submit(self, deployment: DeploymentRoute, settings: GatewaySettings, body: bytes,
               forward: Headers, request_id: str) -> Pairing | None:
        """Accept a copy for the next batch, or drop it when `mirror_max_in_flight` copies are
        accepted. `forward` is the live request's forwarded headers (left unchanged). Returns
        the copy's pairing when it is sampled for comparison: the caller hands it the live
        answer."""
        endpoint, name = deployment.endpoint, deployment.name
        if len(self._tasks) + len(self._batch) >= settings.mirror_max_in_flight:
            self._recorders.mirror(endpoint, name, "dropped")
            return None
        headers = [*forward, (b"x-request-id", request_id.encode("ascii")), MIRROR_HEADER]
        self._recorders.mirror(endpoint, name, "sent")
        pairing = self.comparisons.start(endpoint, name, request_id, self._draw())
        self._batch.append(Copy(deployment, settings.mirror_timeout_s, body, headers,
                                request_id, pairing))
        if self._batch_timer is None:
            self._batch_timer = asyncio.get_running_loop().call_later(BATCH_S, self._send_batch)
        return pairing

    def _send_batch(self) -> None:
        """Start every waiting copy; their writes run back to back in the next loop turn."""
        batch, self._batch, self._batch_timer = self._batch, [], None
        loop = asyncio.get_running_loop()
        for copy in batch:
            task = loop.create_task(self._copy(copy))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _copy(self, copy: Copy) -> None:
        deployment, body, request_id, pairing = (copy.deployment, copy.body, copy.request_id,
                                                 copy.pairing)
        started = time.perf_counter()
        answered: tuple[int | None, bytes] = (None, b"")
        endpoint, name = deployment.endpoint, deployment.name
        status, model_status, size, outcome = 502, None, 0, "failed"
        copies = self._upstream.in_flight.mirror
        key = (endpoint, name)
        if self._recorders.enabled:
            self._recorders.watch_in_flight(key, *self._upstream.in_flight.per_deployment)
        instance = least_in_flight(deployment.instances, self._upstream.in_flight.counts,
                                   self._draw())
        if instance is not None:
            copies[key] = copies.get(key, 0) + 1
            try:
                answer = await self._upstream.send(MIRROR, instance, "POST", instance.score_path,
                                                   body, copy.headers, copy.timeout_s)
                model_status, size = answer.status, len(answer.body)
                status = answer.status
                answered = (answer.status, answer.body)
                outcome = "completed" if 200 <= answer.status < 300 else "failed"
                if self._recorders.enabled:
                    self._recorders.recorder(endpoint, name, MIRROR).upstream_seconds.observe(
                        answer.seconds)
            except UpstreamTimeout:
                status = 408
            except UpstreamError:
                status = 502
            finally:
                copies[key] -= 1
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
            self._recorders.recorder(endpoint, name, MIRROR).answered(
                status, model_status, seconds, bytes_in, bytes_out)
        self._access_log.write(AccessRecord(
            request_id, None, endpoint, name, MIRROR, status, model_status,
            seconds * 1000.0, bytes_in, bytes_out))

    async def close(self) -> None:
        """Drop the copies waiting for their batch and cancel the running ones (at
        shutdown), and wait for them to end."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
        batch, self._batch, self._batch_timer = self._batch, [], None
        for copy in batch:
            if copy.pairing is not None:
                copy.pairing.shadow(None, b"")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

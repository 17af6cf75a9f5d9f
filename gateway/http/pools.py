"""Upstream clients: two pools (live traffic, mirror copies); each request counted in flight.

The mirror pool is separate so that slow shadows can never take connections from live
traffic. The client is `gateway.http.client.HttpClient` (chosen by
`benchmarks/upstream_clients/run.py`: it costs less CPU per request than aiohttp's). Its
errors are mapped here, in one place, onto `UpstreamTimeout`, `UpstreamRefused` (the request
provably never reached the instance: safe to send elsewhere) and `UpstreamFailed`.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from gateway.admission import Admission
from gateway.http.client import (
    BodyStream,
    ClientError,
    ConnectFailed,
    Header,
    HttpClient,
    ResponseFailed,
    ResponseTimeout,
)
from gateway.snapshot import InstanceRoute

LIVE_POOL = "live"
MIRROR_POOL = "mirror"


class UpstreamError(Exception):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamRefused(UpstreamError):
    """Nothing of the request reached the instance (connect failed)."""


class UpstreamFailed(UpstreamError):
    pass


@dataclass(slots=True)  # one per request: a frozen __init__ costs ~0.5 µs more
class Answer:
    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased
    body: bytes  # the whole body, or its first bytes when `rest` is set
    seconds: float
    rest: BodyStream | None = None  # the rest of a large body: read it (`stream_body`) or close it


class Upstream:
    """Opens and closes the pools; sends one request to one instance, counting it in flight
    to that instance (`Admission.instances`) while it runs."""

    def __init__(self, admission: Admission, idle_per_origin: int = 256) -> None:
        self._admission = admission
        self._idle_per_origin = idle_per_origin
        self._clients: dict[str, HttpClient] = {}
        self._said_out_of_fds = False

    async def open(self) -> None:
        self._clients = {pool: HttpClient(self._idle_per_origin)
                         for pool in (LIVE_POOL, MIRROR_POOL)}

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    async def send(self, pool: str, instance: InstanceRoute, method: str, path: str,
                   body: bytes | None, headers: Sequence[Header], timeout_s: float) -> Answer:
        client = self._clients.get(pool)
        if client is None:
            raise UpstreamFailed("the gateway is not started (lifespan not run)")
        admission = self._admission
        admission.start_instance(instance.id)
        started = time.perf_counter()
        try:
            response = await client.request(instance.url, method, path, headers, body, timeout_s)
        except ResponseTimeout:
            raise UpstreamTimeout(f"no answer within {timeout_s:g} s") from None
        except ConnectFailed as error:  # nothing was sent: the caller may try another instance
            if error.out_of_fds:
                self._out_of_fds()
            if error.refused:
                raise UpstreamRefused(f"connection refused by {instance.url}") from None
            raise UpstreamRefused(f"cannot connect to {instance.url}: {error}") from None
        except ResponseFailed as error:
            raise UpstreamFailed(f"{instance.url} failed: {error}") from None
        finally:
            admission.end_instance(instance.id)
        return Answer(response.status, response.reason, response.headers, response.body,
                      time.perf_counter() - started, response.rest)

    def _out_of_fds(self) -> None:
        """Said once: every request would say it again while the limit is hit."""
        if not self._said_out_of_fds:
            self._said_out_of_fds = True
            structlog.get_logger("scoregate.gateway").error(
                "out of file descriptors: upstream connections fail (502); raise the limit "
                "(ulimit -n) or lower --max-connections",
                rlimit_nofile=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


async def rest_of(answer: Answer, limit: int) -> tuple[bytes, int]:
    """The first `limit` bytes of the rest of a streaming answer, and how many were read. A
    body that goes on past them is not read further: its connection is dropped, which costs
    the next request a connect but never the CPU of reading megabytes only to throw them
    away (mirror copies of a shadow that answers big). Errors mapped as `Upstream.send`."""
    rest = answer.rest
    if rest is None:
        return b"", 0
    try:
        kept, size = await rest.collect(limit)
    except ResponseTimeout as error:
        raise UpstreamTimeout(str(error)) from None
    except ClientError as error:
        raise UpstreamFailed(str(error)) from None
    if size > limit:
        rest.close()
    return kept, size

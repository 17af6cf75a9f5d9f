"""Upstream clients: two aiohttp pools (live traffic, mirror copies) and in-flight counters.

The mirror pool is separate so that slow shadows can never take connections from live
traffic. aiohttp's errors are mapped here, in one place, onto `UpstreamTimeout`,
`UpstreamRefused` (the connection provably never reached the instance: safe to retry) and
`UpstreamFailed`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Mapping

import aiohttp

from gateway.snapshot import InstanceRoute

LIVE = "live"
MIRROR = "mirror"


class UpstreamError(Exception):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamRefused(UpstreamError):
    pass


class UpstreamFailed(UpstreamError):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    seconds: float


class InFlight:
    """Requests in flight per instance id (read by the picker and by the supervisor's drain),
    and per (endpoint, deployment): live and direct requests (the 429 rule), mirror copies."""

    __slots__ = ("counts", "live", "mirror")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.live: dict[tuple[str, str], int] = {}
        self.mirror: dict[tuple[str, str], int] = {}

    @property
    def per_deployment(self) -> tuple[dict[tuple[str, str], int], ...]:
        return self.live, self.mirror

    def get(self, instance_id: str) -> int:
        return self.counts.get(instance_id, 0)


class Upstream:
    """Opens and closes the pools; sends one request to one instance, counting it in flight."""

    def __init__(self, live_connections: int = 1000, mirror_connections: int = 256) -> None:
        self.in_flight = InFlight()
        self._limits = {LIVE: live_connections, MIRROR: mirror_connections}
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def open(self) -> None:
        for pool, limit in self._limits.items():
            connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0,
                                             keepalive_timeout=30, enable_cleanup_closed=True)
            self._sessions[pool] = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None))

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def send(self, pool: str, instance: InstanceRoute, method: str, path: str,
                   body: bytes | None, headers: Mapping[str, str] | list[tuple[str, str]],
                   timeout_s: float) -> Answer:
        session = self._sessions.get(pool)
        if session is None:
            raise UpstreamFailed("the gateway is not started (lifespan not run)")
        counts = self.in_flight.counts
        counts[instance.id] = counts.get(instance.id, 0) + 1
        started = time.perf_counter()
        try:
            async with session.request(method, instance.url + path, data=body, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s),
                                       allow_redirects=False) as response:
                data = await response.read()
                return Answer(response.status, response.reason or "",
                              tuple(response.headers.items()), data,
                              time.perf_counter() - started)
        except asyncio.TimeoutError as error:
            raise UpstreamTimeout(f"no answer within {timeout_s:g} s") from error
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, ConnectionRefusedError):
                raise UpstreamRefused(f"connection refused by {instance.url}") from error
            raise UpstreamFailed(f"cannot connect to {instance.url}: {error.os_error}") from error
        except (aiohttp.ClientError, OSError) as error:
            raise UpstreamFailed(f"{instance.url} failed: {type(error).__name__}") from error
        finally:
            left = counts[instance.id] - 1
            if left:
                counts[instance.id] = left
            else:
                del counts[instance.id]

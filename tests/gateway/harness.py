"""The gateway tests' vocabulary: routes for a JSON snapshot, load, and replies. Processes are
started by tests/support/gateway.py; the names below keep the tests' imports short."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.gateway import SnapshotGateway as Gateway
from tests.support.gateway import dead_url, metric, metrics_text, start_snapshot, start_upstream
from tests.support.gateway import wait_port_file as _port
from tests.support.processes import ProcessGroup

__all__ = ["KEY", "KEY2", "Gateway", "Reply", "_port", "auth", "dead_url", "deployment",
           "endpoint", "fire", "get_json", "metric", "metrics_text", "post", "start_backend",
           "start_gateway"]

KEY = "test-key-primary"
KEY2 = "test-key-secondary"


def start_backend(processes: ProcessGroup, tmp: Path, name: str, delay: float = 0.0,
                  status: int = 200, echo: bool = False) -> str:
    return start_upstream(processes, tmp, name, delay=delay, status=status, echo=echo)


def start_gateway(processes: ProcessGroup, tmp: Path, endpoints: list[dict[str, Any]],
                  settings: Mapping[str, Any] | None = None, *flags: str) -> Gateway:
    return start_snapshot(processes, tmp, endpoints, settings, *flags)


def deployment(name: str, *urls: str, timeout: float = 5.0,
               concurrency: int = 8) -> dict[str, Any]:
    return {"name": name, "request_timeout_s": timeout,
            "max_concurrent_requests_per_instance": concurrency,
            "instances": [{"id": f"{name}-{i}", "url": u} for i, u in enumerate(urls)]}


def endpoint(name: str, deployments: list[dict[str, Any]], traffic: Mapping[str, int],
             mirror: Mapping[str, int] | None = None, auth_mode: str = "key",
             token_secret: str = "token-secret") -> dict[str, Any]:
    return {"name": name, "auth_mode": auth_mode, "keys": [KEY, KEY2],
            "token_secret": token_secret, "traffic": dict(traffic), "mirror": dict(mirror or {}),
            "deployments": deployments}


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


async def _fire(url: str, count: int, concurrency: int, headers: Mapping[str, str],
                body: bytes) -> list[Reply]:
    replies: list[Reply] = []
    loop = asyncio.get_running_loop()
    queue = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            started = loop.time()
            async with session.post(url, data=body, headers=dict(headers)) as response:
                data = await response.read()
                replies.append(Reply(response.status, response.headers.copy(), data,
                                     loop.time() - started))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return replies


def fire(url: str, count: int = 1, concurrency: int = 1,
         headers: Mapping[str, str] | None = None,
         body: bytes = b'{"data": [1, 2, 3]}') -> list[Reply]:
    """POST `count` requests with `concurrency` workers; the replies in completion order."""
    return asyncio.run(_fire(url, count, concurrency, auth() if headers is None else headers,
                            body))


def post(url: str, headers: Mapping[str, str] | None = None,
         body: bytes = b'{"data": [1, 2, 3]}') -> Reply:
    return fire(url, 1, 1, headers, body)[0]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())

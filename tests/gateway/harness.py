"""Start fake backends and a gateway as real processes, and drive load at them."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import ProcessGroup, Started, free_port, http_ok, wait_until

HERE = Path(__file__).resolve().parent
KEY = "test-key-primary"
KEY2 = "test-key-secondary"


@dataclass(frozen=True)
class Gateway:
    url: str
    started: Started

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.started.log().splitlines()
                if line.startswith("{")]


def _port(path: Path, started: Started, what: str) -> int:
    def ready() -> bool:
        if started.proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{started.log()}")
        return path.exists() and path.read_text().strip() != ""
    wait_until(ready, timeout=30, what=f"{what} port file")
    return int(path.read_text())


def start_backend(processes: ProcessGroup, tmp: Path, name: str, delay: float = 0.0,
                  status: int = 200, echo: bool = False) -> str:
    port_file = tmp / f"backend-{name}-{len(processes.started)}.port"
    args = [str(HERE / "fake_backend.py"), "--name", name, "--port-file", str(port_file),
            "--delay", str(delay), "--status", str(status)] + (["--echo"] if echo else [])
    started = processes.python(*args, name=f"backend-{name}")
    url = f"http://127.0.0.1:{_port(port_file, started, 'backend ' + name)}"
    wait_until(lambda: http_ok(url + "/"), timeout=30, what=f"backend {name}")
    return url


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def deployment(name: str, *urls: str, timeout: float = 5.0, concurrency: int = 8) -> dict[str, Any]:
    return {"name": name, "request_timeout_s": timeout,
            "max_concurrent_requests_per_instance": concurrency,
            "instances": [{"id": f"{name}-{i}", "url": u} for i, u in enumerate(urls)]}


def endpoint(name: str, deployments: list[dict[str, Any]], traffic: Mapping[str, int],
             mirror: Mapping[str, int] | None = None, auth_mode: str = "key",
             token_secret: str = "token-secret") -> dict[str, Any]:
    return {"name": name, "auth_mode": auth_mode, "keys": [KEY, KEY2],
            "token_secret": token_secret, "traffic": dict(traffic), "mirror": dict(mirror or {}),
            "deployments": deployments}


def start_gateway(processes: ProcessGroup, tmp: Path, endpoints: list[dict[str, Any]],
                  settings: Mapping[str, Any] | None = None, *flags: str) -> Gateway:
    index = len(processes.started)
    config = tmp / f"snapshot-{index}.json"
    config.write_text(json.dumps({"version": 1, "settings": dict(settings or {}),
                                  "endpoints": endpoints}))
    port_file = tmp / f"gateway-{index}.port"
    started = processes.python(str(HERE / "run_gateway.py"), str(config), "--port-file",
                               str(port_file), *flags, name="gateway")
    url = f"http://127.0.0.1:{_port(port_file, started, 'gateway')}"
    wait_until(lambda: http_ok(url + "/healthz"), timeout=30, what="gateway /healthz")
    return Gateway(url, started)


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


def fire(url: str, count: int = 1, concurrency: int = 1, headers: Mapping[str, str] | None = None,
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


def metrics_text(gateway_url: str) -> str:
    with urllib.request.urlopen(gateway_url + "/metrics", timeout=10) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def python() -> str:
    return sys.executable

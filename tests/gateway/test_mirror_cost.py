"""What a mirror copy may cost the primary: nothing before the client has its answer, nothing
but a counter when dropped."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.admission import Admission
from gateway.http.pools import Upstream
from gateway.shadow.mirror import Mirror
from gateway.shadow.pairing import Comparisons
from gateway.shadow.rules import CompareSettings
from gateway.snapshot import DeploymentRoute, GatewaySettings, InstanceRoute
from gateway.telemetry.access_log import AccessLog
from gateway.telemetry.metrics import Recorders
from tests.gateway.harness import deployment, endpoint, get_json, post, start_backend, start_gateway
from tests.support.processes import ProcessGroup, wait_until

ANSWER = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3\r\n\r\n[1]'


class Untouchable(list[tuple[bytes, bytes]]):
    """Forwarded headers that fail the test if anything reads them."""

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a dropped copy read the forwarded headers")


class Shadow:
    """A real HTTP shadow on loopback that notes when each copy arrives and answers on demand."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            self.arrivals.append(time.perf_counter())
            await self.release.wait()
            writer.write(ANSWER)
            await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def _with_mirror(test: Any) -> Any:
    shadow = Shadow()
    admission = Admission()
    upstream = Upstream(admission)
    await upstream.open()
    comparisons = Comparisons(CompareSettings(), metrics_enabled=False)
    mirror = Mirror(upstream, admission, Recorders(False), AccessLog(False), lambda: 0.0,
                    comparisons)
    route = DeploymentRoute("green", "main", (InstanceRoute("green-0", await shadow.start()),))
    try:
        return await test(mirror, route, shadow, comparisons)
    finally:
        shadow.release.set()
        await mirror.close()
        await upstream.close()
        await shadow.close()


def test_a_dropped_copy_only_counts() -> None:
    settings = GatewaySettings(mirror_max_in_flight=2)

    async def scenario(mirror: Mirror, route: DeploymentRoute, shadow: Shadow,
                       comparisons: Comparisons) -> None:
        forward = [(b"content-type", b"application/json")]
        accepted = [mirror.submit(route, settings, b"{}", forward, f"r{i}") for i in range(2)]
        assert all(pairing is not None for pairing in accepted)  # 100% sampled for comparison
        assert forward == [(b"content-type", b"application/json")]  # the caller's list unchanged
        assert mirror.in_flight == 2
        for i in range(5):
            assert mirror.submit(route, settings, b"{}", Untouchable(), f"d{i}") is None
        assert mirror.in_flight == 2
        report = comparisons.report("main", "green")
        assert report.skipped == 0  # a dropped copy never reached the comparison sampler
        wait = 0.0
        while len(shadow.arrivals) < 2 and wait < 30:
            await asyncio.sleep(0.01)
            wait += 0.01
        assert len(shadow.arrivals) == 2  # only the accepted copies were sent

    asyncio.run(_with_mirror(scenario))


PRIMARY_DELAY = 1.0


def test_the_copy_leaves_after_the_client_has_its_answer(processes: ProcessGroup,
                                                         tmp_path: Path) -> None:
    primary = start_backend(processes, tmp_path, "blue", delay=PRIMARY_DELAY)
    shadow = start_backend(processes, tmp_path, "green")
    routes = [endpoint("main", [deployment("blue", primary), deployment("green", shadow)],
                       {"blue": 100}, {"green": 100})]
    gateway = start_gateway(processes, tmp_path, routes)
    replies: list[Any] = []
    threads = [threading.Thread(target=lambda: replies.append(post(gateway.url + "/score")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    seen_while_waiting = []
    deadline = time.monotonic() + PRIMARY_DELAY / 2  # the primary answers 1 s after arrival
    while time.monotonic() < deadline:
        seen_while_waiting.append(get_json(shadow + "/stats")["mirror"])
        time.sleep(0.05)
    assert all(thread.is_alive() for thread in threads)  # no live answer yet...
    assert set(seen_while_waiting) == {0}  # ...so no copy has left
    for thread in threads:
        thread.join(60)
    assert sorted(reply.status for reply in replies) == [200] * 4
    wait_until(lambda: get_json(shadow + "/stats")["mirror"] == 4, timeout=30,
               what="the copies, after the answers")

"""Concurrent clients for the reliability tests: every request is told apart by its body.

A transport error is a result too (status 0 and the error's name), never an exception, so a
test can count exactly what failed and why.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class Result:
    body: bytes
    status: int  # 0: no HTTP answer at all
    answer: bytes
    seconds: float
    error: str = ""


async def _fire(url: str, bodies: list[bytes], headers: Mapping[str, str], concurrency: int,
                timeout_s: float) -> list[Result]:
    results: list[Result] = []
    pending = iter(bodies)
    loop = asyncio.get_running_loop()

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in pending:
            started = loop.time()
            try:
                async with session.post(url, data=body, headers=dict(headers)) as response:
                    data = await response.read()
                    results.append(Result(body, response.status, data, loop.time() - started))
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                results.append(Result(body, 0, b"", loop.time() - started,
                                      f"{type(error).__name__}: {error}"))

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


def fire(url: str, bodies: Iterable[bytes], headers: Mapping[str, str], concurrency: int = 4,
         timeout_s: float = 60.0) -> list[Result]:
    """POST each body once, `concurrency` at a time; results in completion order."""
    return asyncio.run(_fire(url, list(bodies), headers, concurrency, timeout_s))


def numbered(count: int, tag: str = "r") -> list[bytes]:
    return [f'{{"id": "{tag}-{i}"}}'.encode() for i in range(count)]


@dataclass
class Background:
    """`fire` in a thread until stopped: load that runs while a test breaks something."""

    url: str
    headers: Mapping[str, str]
    concurrency: int = 4
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Background:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Result]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        return self.results

    def _run(self) -> None:
        batch = 0
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            batch += 1
            self.results += fire(self.url, numbered(self.concurrency * 5, f"b{batch}"),
                                 self.headers, self.concurrency)

"""A steady, bounded client load on one endpoint (a few threads, no deployment header), for
end-to-end tests that change traffic under it: which deployment answered, when each first did,
and every failure."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.gateway import RunningGateway

BODY = b'{"data": [[1]]}'


@dataclass
class Load:
    gateway: RunningGateway
    key: str
    endpoint: str
    threads: int = 4
    pause_s: float = 0.0  # between two requests of one thread
    max_s: float = 180.0  # bounded even if a test forgets to stop it
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)  # monotonic
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.sent += 1
                try:
                    response = self.gateway.score(self.endpoint, BODY, self.key, client=client)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                deployment = response.headers.get("azureml-model-deployment", "none")
                if response.status_code != 200:
                    self.failures.append(f"{deployment}: {response.status_code}")
                else:
                    self.seen[deployment] += 1
                    self.first_seen.setdefault(deployment, time.monotonic())
                if self.pause_s:
                    time.sleep(self.pause_s)  # pacing the load, not waiting on a condition

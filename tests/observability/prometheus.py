"""A real Prometheus (Debian's `prometheus` binary) on loopback, and its HTTP API for tests.

The test writes its own scrape config (1 s interval, one target), so what Prometheus stores is
exactly what the gateway exposed; `wait_for_scrape_after` lets a test read it without sleeping
for a fixed time.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.processes import ProcessGroup, free_port, http_ok, wait_until

JOB = "scoregate"


@dataclass(frozen=True)
class Prometheus:
    url: str
    job: str = JOB

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; each result has `metric` (labels) and `value` ([time, "text"])."""
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] != "vector":
            raise AssertionError(f"{expr!r} gave a {data['resultType']}, not a vector")
        return list(data["result"])

    def value(self, expr: str) -> float:
        """The one value of an aggregated expression; 0 when it has no series yet."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr!r} gave {len(result)} series, expected one")
        return float(result[0]["value"][1]) if result else 0.0

    def series(self, match: str, start: float) -> set[frozenset[tuple[str, str]]]:
        data = self._get("/api/v1/series", {"match[]": match, "start": f"{start:.3f}"})
        return {frozenset(labels.items()) for labels in data}

    def label_values(self, label: str, match: str) -> set[str]:
        return set(self._get(f"/api/v1/label/{label}/values", {"match[]": match}))

    def last_scrape(self) -> float:
        """When the latest successful scrape of the target started (epoch seconds).

        `timestamp()` must wrap the selector itself: around any other expression (`up == 1`)
        it gives the evaluation time, which is always "now".
        """
        selector = f'up{{job="{self.job}"}}'
        if self.value(selector) != 1:
            return -math.inf
        return self.value(f"timestamp({selector})")

    def wait_for_scrape_after(self, moment: float, timeout: float = 60.0) -> None:
        """Until a scrape that started after `moment` is stored: it saw everything before it.

        The margin covers Prometheus moving a scrape's timestamp by up to 2 ms onto its
        schedule (--scrape.timestamp-tolerance).
        """
        wait_until(lambda: self.last_scrape() > moment + 0.005, timeout=timeout, interval=0.2,
                   what="Prometheus to scrape the gateway again")


def prometheus_tool(name: str) -> str | None:
    """Where a program of Debian's prometheus package is; in CI (CI=true) its absence is a
    failure, not a skip."""
    found = shutil.which(name)
    if found is None and os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's prometheus package (see .ci/run)")
    return found


def prometheus_binary() -> str | None:
    return prometheus_tool("prometheus")


def start_prometheus(group: ProcessGroup, workdir: Path, target: str,
                     interval: str = "1s") -> Prometheus:
    """Start Prometheus scraping `target` (host:port) every `interval`; wait until it is ready."""
    binary = prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus is not on PATH (Debian package: prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                            "static_configs": [{"targets": [target]}]}],
    }))
    port = free_port()
    started = group.start([binary, f"--config.file={config}",
                           f"--storage.tsdb.path={workdir / 'data'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                          name="prometheus")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if started.proc.poll() is not None:
            code = started.proc.returncode
            raise AssertionError(f"prometheus exited with {code}:\n{started.log()}")
        return http_ok(f"{url}/-/ready")

    wait_until(ready, timeout=60, what="Prometheus to be ready")
    return Prometheus(url)

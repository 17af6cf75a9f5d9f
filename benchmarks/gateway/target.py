"""A target of the benchmark: where wrk sends its load, and which processes to account."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from benchmarks.common.children import Child
from benchmarks.common.proc_stats import CpuProbe

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    name: str  # "direct", "nginx" or "scoregate", with a variant after a colon
    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))
    proxy: CpuProbe | None = None  # the proxy's processes; None when there is no proxy
    child: Child | None = None

    def check_alive(self) -> None:
        if self.child is not None:
            self.child.check_alive()


def direct(url: str) -> Target:
    return Target("direct", url)

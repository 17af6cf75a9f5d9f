"""One measured run: wrk against a target, with the proxy's CPU and memory around it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.common.children import Children
from benchmarks.common.wrk import Load, run_wrk
from benchmarks.gateway.target import Target


@dataclass(frozen=True)
class Sample:
    case: str
    payload: str
    target: str
    run: int
    throughput: float  # requests completed per second
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors, timeouts and non-2xx/3xx answers
    cpu_us_per_request: float | None  # proxy CPU (utime + stime); None without a proxy
    rss_mb: float | None  # proxy resident memory after the run
    offered_rate: float = 0.0  # 0 when unpaced


def measure(target: Target, load: Load, work: Path, children: Children, case: str,
            payload: str, run: int) -> Sample:
    target.check_alive()
    cpu_before = target.proxy.total() if target.proxy else None
    result = run_wrk(target.url, _with_target(load, target), work, children)
    target.check_alive()
    cpu_after = target.proxy.total() if target.proxy else None
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and result.requests > 0:
        cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
    return Sample(
        case=case, payload=payload, target=target.name, run=run,
        throughput=result.throughput, p50_ms=result.p50_ms, p99_ms=result.p99_ms,
        requests=result.requests, errors=result.error_count, cpu_us_per_request=cpu_us,
        rss_mb=target.proxy.rss() / 2**20 if target.proxy else None,
        offered_rate=load.rate_per_s,
    )


def warm_up(target: Target, load: Load, work: Path, children: Children) -> None:
    """A short unrecorded run: connections opened, code paths warm, first-request costs paid."""
    run_wrk(target.url, replace(_with_target(load, target), duration_s=1.0, rate_per_s=0.0),
            work, children)


def _with_target(load: Load, target: Target) -> Load:
    return replace(load, headers={**load.headers, **target.headers})

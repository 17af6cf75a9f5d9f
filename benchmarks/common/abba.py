"""Servers compared under one load: each measured run is a wrk run plus the CPU the server's
process tree spent in it (utime + stime from /proc, ÷ requests completed); runs alternate
between the servers in ABBA order after a 1 s warm-up each, so a steady drift on a shared
machine hits all alike; the figures compared are the runs' medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from benchmarks.common.children import Child, Children, free_port, http_get, wait_until
from benchmarks.common.proc_stats import tree_cpu_seconds
from benchmarks.common.wrk import Load, run_wrk

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
WARM_UP_S = 1


@dataclass(frozen=True)
class Server:
    name: str
    child: Child
    url: str  # the scoring URL


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    failures: int


class Named(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Named)


def cpu_us_per_request(cpu_s: float, requests: int) -> float:
    return cpu_s * 1e6 / requests if requests else float("nan")


def wait_ready(server: Server, probe: str, timeout_s: float = START_TIMEOUT_S) -> Server:
    """`server` once `probe` answers 200 (fails at once if its process died)."""
    def answered() -> bool:
        server.child.check_alive()
        reply = http_get(probe)
        return reply is not None and reply[0] == 200

    wait_until(answered, timeout_s, what=f"{server.name} to answer {probe}")
    return server


def start_mlflow_scoring_server(children: Children, name: str, model_dir: Path,
                                env: Mapping[str, str] | None = None) -> Server:
    """scoregate's no-code MLflow server (`python -m scoring_servers.mlflow`) with one predict
    thread (WORKER_COUNT=1) on a free loopback port, once it answers `GET /`."""
    port = free_port()
    child = children.start(
        [sys.executable, "-m", "scoring_servers.mlflow", "--model_dir", str(model_dir),
         "--host", "127.0.0.1", "--port", str(port)], name=name, cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "WORKER_COUNT": "1", **(env or {})})
    return wait_ready(Server(name, child, f"http://127.0.0.1:{port}/score"),
                      f"http://127.0.0.1:{port}/")


def measure(server: Server, load: Load, work_dir: Path, children: Children) -> Measurement:
    """One wrk run against `server` and the CPU its process tree spent meanwhile."""
    before = tree_cpu_seconds(server.child.pid)
    result = run_wrk(server.url, load, work_dir, children)
    cpu_s = tree_cpu_seconds(server.child.pid) - before
    server.child.check_alive()
    return Measurement(result.throughput, result.p50_ms, result.p99_ms,
                       cpu_us_per_request(cpu_s, result.requests), result.error_count)


def alternate(servers: Sequence[S], runs: int, duration_s: float,
              measure_run: Callable[[S, float], Measurement],
              report: Callable[[S, int, Measurement], None]) -> dict[str, list[Measurement]]:
    """A warm-up run of each server, then `runs` measured runs of each in ABBA order;
    `report(server, run, measurement)` after each measured one (run counts from 1)."""
    results: dict[str, list[Measurement]] = {server.name: [] for server in servers}
    for server in servers:
        measure_run(server, WARM_UP_S)  # warm-up, not counted
    for run in range(runs):
        for server in servers if run % 2 == 0 else list(reversed(servers)):
            measurement = measure_run(server, duration_s)
            results[server.name].append(measurement)
            report(server, run + 1, measurement)
    return results


def medians(results: Mapping[str, Sequence[Measurement]],
            latency: bool = False) -> dict[str, float]:
    """Per server: `<name>_req_per_s`, `<name>_cpu_us_per_req` (and `<name>_p50_ms`,
    `<name>_p99_ms` with `latency`) as medians, `<name>_failures` summed."""
    summary: dict[str, float] = {}
    for name, runs in results.items():
        summary[f"{name}_req_per_s"] = statistics.median(m.requests_per_s for m in runs)
        if latency:
            summary[f"{name}_p50_ms"] = statistics.median(m.p50_ms for m in runs)
            summary[f"{name}_p99_ms"] = statistics.median(m.p99_ms for m in runs)
        summary[f"{name}_cpu_us_per_req"] = statistics.median(m.cpu_us_per_request for m in runs)
        summary[f"{name}_failures"] = sum(m.failures for m in runs)
    return summary


def load_arguments(parser: argparse.ArgumentParser, runs: int, duration_s: float,
                   connections: int) -> None:
    """--runs, --duration, --connections and --json, with these defaults."""
    parser.add_argument("--runs", type=int, default=runs,
                        help=f"measured runs per server (default {runs})")
    parser.add_argument("--duration", type=float, default=duration_s,
                        help=f"seconds per wrk run (default {duration_s:g})")
    parser.add_argument("--connections", type=int, default=connections,
                        help=f"wrk connections (default {connections})")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")


def parse_load_arguments(parser: argparse.ArgumentParser,
                         argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--runs, --duration and --connections must be at least 1")
    return args

"""Gateway CPU µs per proxied request: aiohttp, httpx and our own upstream client, and scoregate.

    python benchmarks/upstream_clients/run.py [--duration 5] [--runs 3] [--connections 8]

Same fake backend, same ~200 B JSON body, same wrk load (bounded connections) for each
target, runs taken round-robin; CPU is the proxy process's utime+stime from /proc over the wrk
run. Prints medians. scoregate runs under serve's uvicorn settings
(benchmarks/common/snapshot_gateway.py); the backend is benchmarks/common/backend.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common.backends import start_backend  # noqa: E402
from benchmarks.common.children import Child, Children, http_get, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
GATEWAY = ROOT / "benchmarks" / "common" / "snapshot_gateway.py"  # under serve's settings
KEY = "bench-key"
BODY = json.dumps({"data": [[round(i * 0.37, 3) for i in range(10)] for _ in range(3)]})
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    cpu_s: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_port(path: Path, child: Child) -> int:
    def written() -> bool:
        child.check_alive()
        return path.exists() and path.read_text().strip() != ""

    wait_until(written, 30, f"port file {path} (log: {child.log_path})")
    return int(path.read_text())


def wrk(url: str, script: Path, duration: int, connections: int) -> tuple[int, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
                          "-s", str(script), url], capture_output=True, text=True,
                         check=True).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return requests, duration


def _answers(url: str, child: Child) -> bool:
    child.check_alive()
    return http_get(url, timeout_s=0.5) is not None


def measure(pid: int, url: str, script: Path, duration: int, connections: int) -> Run:
    wrk(url, script, 1, connections)  # warm-up: pools, caches, metric children
    before = cpu_seconds(pid)
    requests, seconds = wrk(url, script, duration, connections)
    return Run(requests, seconds, cpu_seconds(pid) - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", action="append", default=[],
                        help="run only targets whose name contains this text (repeatable)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scoregate-bench-"))
    script = tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {KEY}"\n')
    with Children(tmp / "logs") as group:
        backend = start_backend(group, "blue", 0.0).base_url
        snapshot = tmp / "snapshot.json"
        snapshot.write_text(json.dumps({"version": 1, "endpoints": [{
            "name": "main", "keys": [KEY], "traffic": {"blue": 100}, "deployments": [{
                "name": "blue", "max_concurrent_requests_per_instance": 1000,
                "instances": [{"id": "blue-0", "url": backend}]}]}]}))
        targets: dict[str, list[str]] = {
            "bare proxy, aiohttp client": [str(HERE / "bare_proxy.py"), "--client", "aiohttp",
                                           "--backend", backend],
            "bare proxy, httpx client": [str(HERE / "bare_proxy.py"), "--client", "httpx",
                                         "--backend", backend],
            "bare proxy, scoregate client": [str(HERE / "bare_proxy.py"), "--client", "scoregate",
                                             "--backend", backend],
            "scoregate, metrics+log on": [str(GATEWAY), str(snapshot)],
            "scoregate, metrics+log off": [str(GATEWAY), str(snapshot), "--no-metrics",
                                           "--no-access-log"],
            "scoregate, metrics only": [str(GATEWAY), str(snapshot), "--no-access-log"],
            "scoregate, access log only": [str(GATEWAY), str(snapshot), "--no-metrics"],
            "scoregate, on, plain httptools": [str(GATEWAY), str(snapshot), "--http", "httptools"],
        }
        if args.only:
            targets = {k: v for k, v in targets.items() if any(o in k for o in args.only)}
        print(f"{args.runs} runs x {args.duration:g} s, wrk -t1 -c{args.connections}, "
              f"body {len(BODY)} B; medians")
        print(f"{'target':32} {'CPU us/req':>10} {'req/s':>9}")
        urls: dict[str, tuple[int, str]] = {}
        for index, (name, command) in enumerate(targets.items()):
            port_file = tmp / f"target-{index}.port"
            started = group.start([sys.executable, *command, "--port-file", str(port_file)],
                                  name=f"target{index}", env={"PYTHONPATH": str(ROOT)})
            url = f"http://127.0.0.1:{wait_port(port_file, started)}"
            wait_until(partial(_answers, url + "/healthz", started), 30, name)
            urls[name] = (started.pid, url + "/score")
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(args.runs):  # round-robin, so drift on a busy machine hits all alike
            for name, (pid, url) in urls.items():
                runs[name].append(measure(pid, url, script, args.duration, args.connections))
        for name, done in runs.items():
            print(f"{name:32} {statistics.median(r.cpu_us_per_request for r in done):10.0f} "
                  f"{statistics.median(r.rps for r in done):9.0f}", flush=True)


if __name__ == "__main__":
    main()

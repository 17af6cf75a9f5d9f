"""Dynamic batching benchmark: one MLflow scikit-learn model instance, batching on against off.

    python benchmarks/batching/run.py [--runs 3] [--duration 5] [--connections 32]
                                      [--batching 32,10] [--json out.json]

Two instances of scoregate's no-code MLflow server (`python -m scoring_servers.mlflow`) serve
azureml-examples' sklearn-diabetes model (10 double columns), each with WORKER_COUNT=1: one
with `SCOREGATE_BATCHING=32,10`, one without. Both get the same closed-loop load, `wrk -t1
-c32` with a Lua body of one row (`input_data` in split form, as Azure clients send): 32
concurrent single-row clients. Runs alternate between the two (ABBA) after a 1 s warm-up each,
so machine noise hits both alike; the run first checks that both answer the same bytes.

Reported per run and as medians: requests/s, p50 and p99 latency (wrk's), and CPU per request
(utime + stime of the server process ÷ requests completed); then the ratios batching on/off
from the same run (targets: throughput ≥ 4×, p99 no worse) and the load average, since the
figures are only comparable within one run on a shared machine. Linux only; needs `wrk`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common.children import (  # noqa: E402
    Child,
    Children,
    exit_on_signals,
    free_port,
    http_get,
    wait_until,
)
from benchmarks.common.wrk import Load, run_wrk  # noqa: E402
from benchmarks.scoring_server.proc_cpu import tree_cpu_seconds  # noqa: E402

NCD = REPO_ROOT / "tests" / "data" / "azureml-examples" / "cli" / "endpoints" / "online" / "ncd"
MODEL_DIR = NCD / "sklearn-diabetes" / "model"
START_TIMEOUT_S = 120.0
ON, OFF = "batching", "no-batching"


@dataclass(frozen=True)
class Server:
    name: str
    child: Child
    url: str


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    failures: int


def single_row_body(scratch: Path) -> Path:
    request = json.loads((NCD / "sample-request-sklearn.json").read_text())["input_data"]
    body = scratch / "one-row.json"
    body.write_text(json.dumps({"input_data": {"columns": request["columns"],
                                               "index": [0], "data": request["data"][:1]}}))
    return body


def start(children: Children, name: str, batching: str | None) -> Server:
    port = free_port()
    env = {"PYTHONPATH": str(REPO_ROOT), "WORKER_COUNT": "1", "AZUREML_LOG_LEVEL": "WARNING"}
    if batching is not None:
        env["SCOREGATE_BATCHING"] = batching
    child = children.start(
        [sys.executable, "-m", "scoring_servers.mlflow", "--model_dir", str(MODEL_DIR),
         "--host", "127.0.0.1", "--port", str(port)], name=name, env=env, cwd=REPO_ROOT)
    server = Server(name, child, f"http://127.0.0.1:{port}/score")

    def answered() -> bool:
        child.check_alive()
        reply = http_get(f"http://127.0.0.1:{port}/")
        return reply is not None and reply[0] == 200

    wait_until(answered, START_TIMEOUT_S, what=f"{name} to answer")
    return server


def answer(server: Server, body: bytes) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(server.url, data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), {name.lower(): value for name, value in response.headers.items()}


def check_same_answer(on: Server, off: Server, body: bytes) -> None:
    batched, headers = answer(on, body)
    alone, _ = answer(off, body)
    if batched != alone or "x-scoregate-batch-size" not in headers:
        raise RuntimeError(f"the servers answer differently: {batched!r} vs {alone!r} "
                           f"(batch headers: {headers.get('x-scoregate-batch-size')})")


def measure(server: Server, body_path: Path, duration_s: float, connections: int,
            work_dir: Path, children: Children) -> Measurement:
    load = Load(body_path=body_path, headers={"Content-Type": "application/json"},
                connections=connections, duration_s=duration_s)
    before = tree_cpu_seconds(server.child.pid)
    result = run_wrk(server.url, load, work_dir, children)
    cpu_s = tree_cpu_seconds(server.child.pid) - before
    server.child.check_alive()
    per_request = cpu_s * 1e6 / result.requests if result.requests else float("nan")
    return Measurement(result.throughput, result.p50_ms, result.p99_ms, per_request,
                       result.error_count)


def bench(args: argparse.Namespace, scratch: Path) -> dict[str, list[Measurement]]:
    body_path = single_row_body(scratch)
    results: dict[str, list[Measurement]] = {ON: [], OFF: []}
    with Children(scratch / "logs") as children:
        servers = [start(children, ON, args.batching), start(children, OFF, None)]
        check_same_answer(servers[0], servers[1], body_path.read_bytes())
        for server in servers:
            measure(server, body_path, 1, args.connections, scratch / "wrk", children)  # warm-up
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else list(reversed(servers)):
                result = measure(server, body_path, args.duration, args.connections,
                                 scratch / "wrk", children)
                results[server.name].append(result)
                print(f"  {server.name:12} run {run + 1}: {result.requests_per_s:7.0f} req/s "
                      f"p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:6.1f} ms "
                      f"{result.cpu_us_per_request:6.0f} µs CPU/req ({result.failures} failed)",
                      flush=True)
    return results


def summarise(results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for name, runs in results.items():
        summary[f"{name}_req_per_s"] = statistics.median(m.requests_per_s for m in runs)
        summary[f"{name}_p50_ms"] = statistics.median(m.p50_ms for m in runs)
        summary[f"{name}_p99_ms"] = statistics.median(m.p99_ms for m in runs)
        summary[f"{name}_cpu_us_per_req"] = statistics.median(m.cpu_us_per_request for m in runs)
        summary[f"{name}_failures"] = sum(m.failures for m in runs)
    summary["throughput_ratio"] = summary[f"{ON}_req_per_s"] / summary[f"{OFF}_req_per_s"]
    summary["p99_ratio"] = summary[f"{ON}_p99_ms"] / summary[f"{OFF}_p99_ms"]
    summary["load_average_1m"] = os.getloadavg()[0]
    return summary


def print_table(summary: dict[str, float]) -> None:
    print("\nmedians          req/s  p50 ms  p99 ms  CPU µs/req  failures")
    for name in (ON, OFF):
        print(f"  {name:12} {summary[f'{name}_req_per_s']:7.0f} {summary[f'{name}_p50_ms']:7.1f} "
              f"{summary[f'{name}_p99_ms']:7.1f} {summary[f'{name}_cpu_us_per_req']:11.0f} "
              f"{summary[f'{name}_failures']:9.0f}")
    throughput, p99 = summary["throughput_ratio"], summary["p99_ratio"]
    print(f"  throughput on/off x{throughput:.2f} ({'meets' if throughput >= 4 else 'MISSES'} "
          f">= 4x); p99 on/off x{p99:.2f} ({'meets' if p99 <= 1 else 'MISSES'} <= 1); "
          f"load average {summary['load_average_1m']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server (3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--batching", default="32,10",
                        help="SCOREGATE_BATCHING of the batching server (32,10)")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--runs, --duration and --connections must be at least 1")
    exit_on_signals()
    print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.runs} runs each, one "
          f"predict thread per server; batching {args.batching}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="batching-bench-") as scratch_dir:
        summary = summarise(bench(args, Path(scratch_dir)))
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import abba  # noqa: E402
from benchmarks.common.abba import Measurement, Server  # noqa: E402
from benchmarks.common.children import Children, exit_on_signals  # noqa: E402
from benchmarks.common.wrk import Load  # noqa: E402

NCD = REPO_ROOT / "tests" / "data" / "azureml-examples" / "cli" / "endpoints" / "online" / "ncd"
MODEL_DIR = NCD / "sklearn-diabetes" / "model"
ON, OFF = "batching", "no-batching"


def single_row_body(scratch: Path) -> Path:
    request = json.loads((NCD / "sample-request-sklearn.json").read_text())["input_data"]
    body = scratch / "one-row.json"
    body.write_text(json.dumps({"input_data": {"columns": request["columns"],
                                               "index": [0], "data": request["data"][:1]}}))
    return body


def start(children: Children, name: str, batching: str | None) -> Server:
    env = {"AZUREML_LOG_LEVEL": "WARNING"}
    if batching is not None:
        env["SCOREGATE_BATCHING"] = batching
    return abba.start_mlflow_scoring_server(children, name, MODEL_DIR, env)


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


def bench(args: argparse.Namespace, scratch: Path) -> dict[str, list[Measurement]]:
    body_path = single_row_body(scratch)
    with Children(scratch / "logs") as children:
        servers = [start(children, ON, args.batching), start(children, OFF, None)]
        check_same_answer(servers[0], servers[1], body_path.read_bytes())

        def measure_run(server: Server, duration_s: float) -> Measurement:
            load = Load(body_path=body_path, headers={"Content-Type": "application/json"},
                        connections=args.connections, duration_s=duration_s)
            return abba.measure(server, load, scratch / "wrk", children)

        def report(server: Server, run: int, result: Measurement) -> None:
            print(f"  {server.name:12} run {run}: {result.requests_per_s:7.0f} req/s "
                  f"p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:6.1f} ms "
                  f"{result.cpu_us_per_request:6.0f} µs CPU/req ({result.failures} failed)",
                  flush=True)

        return abba.alternate(servers, args.runs, args.duration, measure_run, report)


def summarise(results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary = abba.medians(results, latency=True)
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
    abba.load_arguments(parser, runs=3, duration_s=5, connections=32)
    parser.add_argument("--batching", default="32,10",
                        help="SCOREGATE_BATCHING of the batching server (32,10)")
    args = abba.parse_load_arguments(parser, argv)
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

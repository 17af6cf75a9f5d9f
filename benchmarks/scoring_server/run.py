"""Scoring-server benchmark: scoregate's server vs Microsoft's azmlinfsrv on the same score.py.

    python benchmarks/scoring_server/run.py [--runs 5] [--duration 5] [--connections 8]

Both get WORKER_COUNT=1, the same environment and the same wrk load; runs alternate between the
two servers (in ABBA order, so a steady drift on a noisy machine hits both alike). Prints medians
of req/s and server CPU µs per request (utime + stime of the server's whole process tree,
before/after each run) and their ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from proc_cpu import tree_cpu_seconds
from targets import (
    AZMLINFSRV,
    HERE,
    REPO_ROOT,
    SCOREGATE,
    RunningServer,
    Target,
    Workload,
    ensure_azmlinfsrv_venv,
)
from wrk_load import run_wrk

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"
TARGETS = (SCOREGATE, AZMLINFSRV)
CPU_RATIO_TARGET = 1 / 4  # scoregate's CPU per request at most a quarter of azmlinfsrv's


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    cpu_us_per_request: float
    failures: int


def workloads(scratch: Path) -> list[Workload]:
    """The trivial script and the blue-green example's scikit-learn one (model-1)."""
    trivial_body = scratch / "trivial.json"
    trivial_body.write_text(json.dumps({"data": [[1, 2, 3]]}))
    _ensure_models()
    model_dir = scratch / "model-dir"
    model_dir.mkdir()
    (model_dir / "model").symlink_to(EXAMPLE / "model-1" / "model", target_is_directory=True)
    return [
        Workload("trivial", HERE / "trivial", "score.py", trivial_body),
        Workload("sklearn", EXAMPLE / "model-1" / "onlinescoring", "score.py",
                 EXAMPLE / "sample-request.json", model_dir),
    ]


def _ensure_models() -> None:
    spec = importlib.util.spec_from_file_location("blue_green_train", EXAMPLE / "train.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {EXAMPLE / 'train.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ensure_models(EXAMPLE)


def measure(server: RunningServer, workload: Workload, duration_s: int,
            connections: int) -> Measurement:
    before = tree_cpu_seconds(server.pid)
    result = run_wrk(server.url + "/score", workload.body_file, duration_s, connections)
    cpu_s = tree_cpu_seconds(server.pid) - before
    per_request = cpu_s * 1e6 / result.requests if result.requests else float("nan")
    return Measurement(result.requests_per_s, per_request, result.non_2xx + result.socket_errors)


def bench_workload(workload: Workload, args: argparse.Namespace, log_dir: Path,
                   targets: tuple[Target, ...]) -> dict[str, list[Measurement]]:
    results: dict[str, list[Measurement]] = {target.name: [] for target in targets}
    servers = [RunningServer(target, workload, log_dir) for target in targets]
    entered: list[RunningServer] = []
    try:
        for server in servers:
            entered.append(server.__enter__())
            measure(server, workload, 1, args.connections)  # warm-up, not counted
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else reversed(servers):
                measurement = measure(server, workload, args.duration, args.connections)
                results[server.name].append(measurement)
                print(f"  {workload.name:8} {server.name:11} run {run + 1}: "
                      f"{measurement.requests_per_s:9.0f} req/s "
                      f"{measurement.cpu_us_per_request:8.0f} µs CPU/req "
                      f"({measurement.failures} failed)", flush=True)
    finally:
        for server in reversed(entered):
            server.__exit__(None, None, None)
    return results


def summarise(name: str, results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for target, runs in results.items():
        summary[f"{target}_req_per_s"] = statistics.median(m.requests_per_s for m in runs)
        summary[f"{target}_cpu_us_per_req"] = statistics.median(m.cpu_us_per_request for m in runs)
        summary[f"{target}_failures"] = sum(m.failures for m in runs)
    if "azmlinfsrv" in results:
        summary["cpu_ratio"] = (summary["scoregate_cpu_us_per_req"]
                                / summary["azmlinfsrv_cpu_us_per_req"])
        summary["throughput_ratio"] = (summary["scoregate_req_per_s"]
                                       / summary["azmlinfsrv_req_per_s"])
    return summary


def print_table(summaries: dict[str, dict[str, float]]) -> None:
    print("\nmedians" + " " * 14 + "req/s   CPU µs/req  failures")
    for workload, summary in summaries.items():
        for target in ("scoregate", "azmlinfsrv"):
            if f"{target}_req_per_s" in summary:
                print(f"  {workload:8} {target:11} {summary[f'{target}_req_per_s']:8.0f} "
                      f"{summary[f'{target}_cpu_us_per_req']:11.0f} "
                      f"{summary[f'{target}_failures']:9.0f}")
        if "cpu_ratio" in summary:
            verdict = "meets" if summary["cpu_ratio"] <= CPU_RATIO_TARGET else "MISSES"
            print(f"  {workload:8} scoregate/azmlinfsrv: "
                  f"CPU per request x{summary['cpu_ratio']:.3f} "
                  f"({verdict} the <= 1/4 target), req/s x{summary['throughput_ratio']:.2f}")


def _thread_settings() -> str:
    """The BLAS/OpenMP thread variables both servers inherit (they apply to both alike)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return " ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="measured runs per server (default 5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--only", choices=["trivial", "sklearn"], help="one workload only")
    parser.add_argument("--scoregate-only", action="store_true", help="skip azmlinfsrv (no venv)")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--runs, --duration and --connections must be at least 1")
    targets = (SCOREGATE,) if args.scoregate_only else TARGETS
    if not args.scoregate_only:
        ensure_azmlinfsrv_venv()
    summaries: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.runs} runs each, "
              f"WORKER_COUNT=1; server logs in {scratch / 'logs'} (removed at the end)", flush=True)
        print(f"environment of both servers: {_thread_settings()}", flush=True)
        for workload in workloads(scratch):
            if args.only in (None, workload.name):
                results = bench_workload(workload, args, scratch / "logs", targets)
                summaries[workload.name] = summarise(workload.name, results)
    print_table(summaries)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

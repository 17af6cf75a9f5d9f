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
import sys
import tempfile
from pathlib import Path

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

from benchmarks.common.abba import (  # (targets.py put the repository on sys.path)
    Measurement,
    alternate,
    cpu_us_per_request,
    load_arguments,
    medians,
    parse_load_arguments,
)
from benchmarks.common.proc_stats import tree_cpu_seconds

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"
TARGETS = (SCOREGATE, AZMLINFSRV)
CPU_RATIO_TARGET = 1 / 4  # scoregate's CPU per request at most a quarter of azmlinfsrv's


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


def measure(server: RunningServer, workload: Workload, duration_s: float,
            connections: int) -> Measurement:
    before = tree_cpu_seconds(server.pid)
    result = run_wrk(server.url + "/score", workload.body_file, max(1, round(duration_s)),
                     connections)
    cpu_s = tree_cpu_seconds(server.pid) - before
    nan = float("nan")  # this wrk report gives no latency percentiles
    return Measurement(result.requests_per_s, nan, nan, cpu_us_per_request(cpu_s, result.requests),
                       result.non_2xx + result.socket_errors)


def bench_workload(workload: Workload, args: argparse.Namespace, log_dir: Path,
                   targets: tuple[Target, ...]) -> dict[str, list[Measurement]]:
    servers = [RunningServer(target, workload, log_dir) for target in targets]
    entered: list[RunningServer] = []

    def measure_run(server: RunningServer, duration_s: float) -> Measurement:
        return measure(server, workload, duration_s, args.connections)

    def report(server: RunningServer, run: int, measurement: Measurement) -> None:
        print(f"  {workload.name:8} {server.name:11} run {run}: "
              f"{measurement.requests_per_s:9.0f} req/s "
              f"{measurement.cpu_us_per_request:8.0f} µs CPU/req "
              f"({measurement.failures} failed)", flush=True)

    try:
        for server in servers:
            entered.append(server.__enter__())
        return alternate(servers, args.runs, args.duration, measure_run, report)
    finally:
        for server in reversed(entered):
            server.__exit__(None, None, None)


def summarise(results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary = medians(results)
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
    load_arguments(parser, runs=5, duration_s=5, connections=8)
    parser.add_argument("--only", choices=["trivial", "sklearn"], help="one workload only")
    parser.add_argument("--scoregate-only", action="store_true", help="skip azmlinfsrv (no venv)")
    args = parse_load_arguments(parser, argv)
    targets = (SCOREGATE,) if args.scoregate_only else TARGETS
    if not args.scoregate_only:
        ensure_azmlinfsrv_venv()
    summaries: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.runs} runs each, "
              f"WORKER_COUNT=1; server logs in {scratch / 'logs'} (removed at the end)", flush=True)
        print(f"environment of both servers: {_thread_settings()}", flush=True)
        for workload in workloads(scratch):
            if args.only in (None, workload.name):
                results = bench_workload(workload, args, scratch / "logs", targets)
                summaries[workload.name] = summarise(results)
    print_table(summaries)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

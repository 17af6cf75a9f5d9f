"""MLflow-model serving benchmark: scoregate's no-code server against `mlflow models serve`.

    python benchmarks/mlflow_server/run.py [--runs 3] [--duration 3] [--connections 8]

Both servers serve the same MLflow model folder, in this Python environment
(`mlflow models serve --env-manager local`, which mlflow-skinny provides), with one worker
each (scoregate: WORKER_COUNT=1 predict thread; MLflow: one uvicorn worker), and get the same
wrk load with the same body: a `dataframe_split` request, the one format both servers accept,
so both parse, enforce the signature and predict exactly the same thing.

Cases:
- `ncd-sklearn`: azureml-examples' no-code sample model (sklearn-diabetes: a scikit-learn
  regression on 10 double columns) with its 2-row sample request;
- `constant`: a pyfunc model with the same signature whose predict returns 0.0 per row, so the
  figures are the servers' own cost plus MLflow's parsing and schema enforcement.

Runs alternate between the two servers (ABBA), after a 1 s warm-up each. CPU per request =
utime + stime of the server's whole process tree (`mlflow models serve` runs uvicorn as a
child) from /proc before and after a run, ÷ requests wrk completed. Prints per-run lines,
medians and the ratio scoregate/MLflow (target: ≤ 1/3). Linux only; needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from collections.abc import Sequence
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
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Case:
    name: str
    model_dir: Path
    body_path: Path


@dataclass(frozen=True)
class Server:
    name: str
    child: Child
    url: str  # the scoring URL


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    cpu_us_per_request: float
    failures: int


def prepare_cases(scratch: Path) -> list[Case]:
    """The sample request as `dataframe_split`, and the constant model with its signature."""
    request = json.loads((NCD / "sample-request-sklearn.json").read_text())["input_data"]
    body = scratch / "dataframe_split.json"
    body.write_text(json.dumps({"dataframe_split": request}))
    sklearn_dir = NCD / "sklearn-diabetes" / "model"
    with warnings.catch_warnings():  # MLflow's advice on models without type hints
        warnings.simplefilter("ignore")
        import mlflow.pyfunc
        from mlflow.models import Model

        signature = Model.load(str(sklearn_dir / "MLmodel")).signature
        constant_dir = scratch / "constant-model"
        mlflow.pyfunc.save_model(str(constant_dir), python_model=str(HERE / "constant_model.py"),
                                 signature=signature)
    return [Case("ncd-sklearn", sklearn_dir, body), Case("constant", constant_dir, body)]


def start_scoregate(children: Children, case: Case, batching: str | None) -> Server:
    """`batching` ("SIZE,MS") turns on the deployment YAML's `batching:` block, as the
    control plane passes it (SCOREGATE_BATCHING); None serves each request alone."""
    port = free_port()
    env = {"PYTHONPATH": str(REPO_ROOT), "WORKER_COUNT": "1"}
    if batching:
        env["SCOREGATE_BATCHING"] = batching
    child = children.start(
        [sys.executable, "-m", "scoring_servers.mlflow", "--model_dir", str(case.model_dir),
         "--host", "127.0.0.1", "--port", str(port)],
        name=f"scoregate-{case.name}", env=env, cwd=REPO_ROOT)
    return _ready(Server("scoregate", child, f"http://127.0.0.1:{port}/score"),
                  f"http://127.0.0.1:{port}/")


def start_mlflow(children: Children, case: Case) -> Server:
    port = free_port()
    child = children.start(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(case.model_dir),
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        name=f"mlflow-{case.name}", cwd=REPO_ROOT)
    return _ready(Server("mlflow", child, f"http://127.0.0.1:{port}/invocations"),
                  f"http://127.0.0.1:{port}/ping")


def _ready(server: Server, probe: str) -> Server:
    def answered() -> bool:
        server.child.check_alive()
        reply = http_get(probe)
        return reply is not None and reply[0] == 200

    wait_until(answered, START_TIMEOUT_S, what=f"{server.name} to answer {probe}")
    return server


def measure(server: Server, case: Case, duration_s: float, connections: int,
            work_dir: Path, children: Children) -> Measurement:
    load = Load(body_path=case.body_path, headers={"Content-Type": "application/json"},
                connections=connections, duration_s=duration_s)
    before = tree_cpu_seconds(server.child.pid)
    result = run_wrk(server.url, load, work_dir, children)
    cpu_s = tree_cpu_seconds(server.child.pid) - before
    server.child.check_alive()
    per_request = cpu_s * 1e6 / result.requests if result.requests else float("nan")
    return Measurement(result.throughput, per_request, result.error_count)


def check_same_answer(servers: Sequence[Server], case: Case) -> None:
    """Both must answer the same predictions, or the comparison means nothing."""
    import urllib.request

    answers = []
    for server in servers:
        request = urllib.request.Request(server.url, data=case.body_path.read_bytes(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answers.append(json.loads(response.read()))
    if answers[0] != answers[1]:
        raise RuntimeError(f"{case.name}: the servers answer differently: {answers}")


def bench_case(case: Case, args: argparse.Namespace, scratch: Path) -> dict[str, list[Measurement]]:
    results: dict[str, list[Measurement]] = {"scoregate": [], "mlflow": []}
    with Children(scratch / "logs" / case.name) as children:
        servers = [start_scoregate(children, case, args.batching), start_mlflow(children, case)]
        check_same_answer(servers, case)
        for server in servers:
            measure(server, case, 1, args.connections, scratch / "wrk", children)  # warm-up
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else list(reversed(servers)):
                result = measure(server, case, args.duration, args.connections,
                                 scratch / "wrk", children)
                results[server.name].append(result)
                print(f"  {case.name:12} {server.name:9} run {run + 1}: "
                      f"{result.requests_per_s:7.0f} req/s {result.cpu_us_per_request:7.0f} "
                      f"µs CPU/req ({result.failures} failed)", flush=True)
    return results


def summarise(results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for name, runs in results.items():
        summary[f"{name}_req_per_s"] = statistics.median(m.requests_per_s for m in runs)
        summary[f"{name}_cpu_us_per_req"] = statistics.median(m.cpu_us_per_request for m in runs)
        summary[f"{name}_failures"] = sum(m.failures for m in runs)
    summary["cpu_ratio"] = summary["scoregate_cpu_us_per_req"] / summary["mlflow_cpu_us_per_req"]
    return summary


def print_table(summaries: dict[str, dict[str, float]]) -> None:
    print("\nmedians                   req/s  CPU µs/req  failures")
    for case, summary in summaries.items():
        for name in ("scoregate", "mlflow"):
            print(f"  {case:12} {name:9} {summary[f'{name}_req_per_s']:7.0f} "
                  f"{summary[f'{name}_cpu_us_per_req']:11.0f} {summary[f'{name}_failures']:9.0f}")
        verdict = "meets" if summary["cpu_ratio"] <= 1 / 3 else "MISSES"
        print(f"  {case:12} scoregate/mlflow CPU per request x{summary['cpu_ratio']:.3f} "
              f"({verdict} the <= 1/3 target)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server (3)")
    parser.add_argument("--duration", type=float, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--only", choices=["ncd-sklearn", "constant"], help="one case only")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    parser.add_argument("--batching", metavar="SIZE,MS",
                        help="serve scoregate with dynamic batching (e.g. 8,5); MLflow's server "
                             "has none")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--runs, --duration and --connections must be at least 1")
    exit_on_signals()
    summaries: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.runs} runs each, "
              f"one worker per server, scoregate batching: {args.batching or 'off'}", flush=True)
        for case in prepare_cases(scratch):
            if args.only in (None, case.name):
                summaries[case.name] = summarise(bench_case(case, args, scratch))
    print_table(summaries)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from benchmarks.common import abba  # noqa: E402
from benchmarks.common.abba import Measurement, Server  # noqa: E402
from benchmarks.common.children import Children, exit_on_signals, free_port  # noqa: E402
from benchmarks.common.wrk import Load  # noqa: E402

NCD = REPO_ROOT / "tests" / "data" / "azureml-examples" / "cli" / "endpoints" / "online" / "ncd"


@dataclass(frozen=True)
class Case:
    name: str
    model_dir: Path
    body_path: Path


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
    env = {"SCOREGATE_BATCHING": batching} if batching else {}
    server = abba.start_mlflow_scoring_server(children, f"scoregate-{case.name}", case.model_dir,
                                              env)
    return Server("scoregate", server.child, server.url)


def start_mlflow(children: Children, case: Case) -> Server:
    port = free_port()
    child = children.start(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(case.model_dir),
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        name=f"mlflow-{case.name}", cwd=REPO_ROOT)
    return abba.wait_ready(Server("mlflow", child, f"http://127.0.0.1:{port}/invocations"),
                           f"http://127.0.0.1:{port}/ping")


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
    with Children(scratch / "logs" / case.name) as children:
        servers = [start_scoregate(children, case, args.batching), start_mlflow(children, case)]
        check_same_answer(servers, case)

        def measure_run(server: Server, duration_s: float) -> Measurement:
            load = Load(body_path=case.body_path, headers={"Content-Type": "application/json"},
                        connections=args.connections, duration_s=duration_s)
            return abba.measure(server, load, scratch / "wrk", children)

        def report(server: Server, run: int, result: Measurement) -> None:
            print(f"  {case.name:12} {server.name:9} run {run}: "
                  f"{result.requests_per_s:7.0f} req/s {result.cpu_us_per_request:7.0f} "
                  f"µs CPU/req ({result.failures} failed)", flush=True)

        return abba.alternate(servers, args.runs, args.duration, measure_run, report)


def summarise(results: dict[str, list[Measurement]]) -> dict[str, float]:
    summary = abba.medians(results)
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
    abba.load_arguments(parser, runs=3, duration_s=3, connections=8)
    parser.add_argument("--only", choices=["ncd-sklearn", "constant"], help="one case only")
    parser.add_argument("--batching", metavar="SIZE,MS",
                        help="serve scoregate with dynamic batching (e.g. 8,5); MLflow's server "
                             "has none")
    args = abba.parse_load_arguments(parser, argv)
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

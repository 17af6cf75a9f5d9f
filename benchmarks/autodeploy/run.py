"""Auto-deploy: how long from `scoregate model create` to the first live request the new version
serves, against the same deployment created and rolled out by hand in the same run.

    python benchmarks/autodeploy/run.py [--runs 3] [--bake 2] [--json out.json]

One `scoregate serve` (state in a temp folder), endpoint `bench-ad` with v1 of a tiny model
(a folder with one word that one scoring script reads) deployed as `blue` with all traffic, a
steady bounded load (3 client threads, 5 ms apart) and an event subscription to a loopback
receiver. Then, per run:

- auto: `model create` of a new version with the policy set (gate: accuracy >= 0.9 on 20
  labelled rows; canary 20% then 100%, `--bake` s each; old deployment deleted). Measured from
  just before `model create` starts to the first client answer from `<model>-v<N>`, and to the
  run's `succeeded`; every auto-deploy event the receiver got, with its time.
- manual (the baseline, same settings): the policy disabled, `model create`, then
  `online-deployment create` of the same copy (no gate) and `rollout start` with the same
  canary, as an operator's script would; measured the same way. Run right after the auto run,
  so both meet the same machine load.

Reported: each run's figures, their medians, the ratio auto / manual (first live request), and
client failures (must be 0). Linux; nothing but Python.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common.children import Children, exit_on_signals, wait_until  # noqa: E402
from benchmarks.common.serve import Serve, start_serve  # noqa: E402

E, MODEL = "bench-ad", "bench-model"
SCRIPT = """\
import glob, json, os
def init():
    pass
def run(raw_data):
    return [1 if row[0] > 0 else 0 for row in json.loads(raw_data)["data"]]
"""
DEPLOYMENT = f"""\
name: blue
endpoint_name: {E}
model: azureml:{MODEL}:1
code_configuration: {{code: code, scoring_script: score.py}}
environment_variables: {{WORKER_COUNT: '2'}}
request_settings: {{max_concurrent_requests_per_instance: 4}}
readiness_probe: {{initial_delay: 0, period: 1}}
"""


class Load:
    """Three client threads, 5 ms apart: which deployment answered first when; failures."""

    def __init__(self, serve: Serve, key: str) -> None:
        self.serve, self.key = serve, key
        self.stop = threading.Event()
        self.first_seen: dict[str, float] = {}
        self.failures: list[str] = []
        self.sent = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(3)]

    def _run(self) -> None:
        url = f"{self.serve.scoring_url}/endpoints/{E}/score"
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        deadline = time.monotonic() + 1800
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.sent += 1
                try:
                    response = client.post(url, content=b'{"data": [[1]]}', headers=headers)
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    self.failures.append(str(response.status_code))
                    continue
                name = response.headers.get("azureml-model-deployment", "none")
                self.first_seen.setdefault(name, time.monotonic())
                time.sleep(0.005)

    def wait_for(self, deployment: str, timeout_s: float = 300) -> float:
        wait_until(lambda: deployment in self.first_seen, timeout_s, f"traffic on {deployment}",
                   interval_s=0.01)
        return self.first_seen[deployment]


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[float, dict[str, Any]]]]]:
    got: list[tuple[float, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append((time.monotonic(), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", got
    finally:
        server.shutdown()
        server.server_close()


def register(serve: Serve, scratch: Path, version: int) -> float:
    folder = scratch / f"model-v{version}"
    folder.mkdir()
    (folder / "mode.txt").write_text("good")
    started = time.monotonic()
    serve.cli("model", "create", "--name", MODEL, "--path", str(folder))
    return started


def live(serve: Serve) -> str:
    traffic = serve.cli_json("online-endpoint", "show", "-n", E)["traffic"]
    return str(max(traffic, key=lambda name: traffic[name]))


def auto_run(serve: Serve, scratch: Path, load: Load, version: int,
             events: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    started = register(serve, scratch, version)
    first = load.wait_for(f"{MODEL}-v{version}") - started

    def done() -> bool:
        runs = serve.cli_json("online-endpoint", "auto-deploy", "show", "-n", E)["runs"]
        run = next((r for r in runs if r["version"] == version), None)
        if run is not None and run["state"] not in ("queued", "running"):
            if run["state"] != "succeeded":
                raise RuntimeError(f"run of v{version} {run['state']}: {run['reason']}")
            return True
        return False

    wait_until(done, 300, f"the run of v{version}", interval_s=0.1)
    promoted = time.monotonic() - started
    received = [(round(at - started, 3), event["type"].rsplit(".", 1)[1]) for at, event in events
                if event["type"].startswith("io.scoregate.autodeploy.")
                and event["data"].get("modelVersion") == str(version)]
    return {"version": version, "first_live_s": first, "run_done_s": promoted,
            "events": received}


def manual_run(serve: Serve, scratch: Path, load: Load, version: int,
               bake: float) -> dict[str, Any]:
    source = serve.cli_json("online-deployment", "show", "-n", live(serve), "-e", E)
    name = f"manual-v{version}"
    spec = scratch / f"{name}.yml"
    spec.write_text(DEPLOYMENT.replace("name: blue", f"name: {name}").replace(
        f"azureml:{MODEL}:1", f"azureml:{MODEL}:{version}"))
    started = register(serve, scratch, version)
    serve.cli("online-deployment", "create", "-f", str(spec))
    serve.cli("online-endpoint", "rollout", "start", "-n", E, "--to", name, "--strategy",
              "canary", "--canary-percent", "20", "--bake", f"{bake}s", "--min-requests", "10")
    first = load.wait_for(name) - started
    serve.cli("online-endpoint", "rollout", "show", "-n", E, "--watch", timeout=300)
    promoted = time.monotonic() - started
    serve.cli("online-deployment", "delete", "-n", source["name"], "-e", E, "--yes")
    return {"version": version, "first_live_s": first, "promoted_s": promoted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bake", type=float, default=2.0, help="seconds per canary step")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    exit_on_signals()
    with tempfile.TemporaryDirectory(prefix="scoregate-bench-ad-") as temp, \
            Children(Path(temp) / "logs") as children, receiver() as (hook, events):
        scratch = Path(temp)
        (scratch / "code").mkdir()
        (scratch / "code" / "score.py").write_text(SCRIPT)
        (scratch / "blue.yml").write_text(DEPLOYMENT)
        rows = ["x,target", *(f"{x},{1 if x > 0 else 0}" for x in range(-10, 10))]
        (scratch / "gate.csv").write_text("\n".join(rows) + "\n")
        serve = start_serve(children, scratch / "home")
        register(serve, scratch, 1)
        serve.cli("online-endpoint", "create", "-n", E)
        serve.cli("online-deployment", "create", "-f", str(scratch / "blue.yml"), "--all-traffic")
        serve.cli("event-subscription", "create", "--name", "bench-hook", "--endpoint", hook)
        policy = ("online-endpoint", "auto-deploy", "set", "-n", E, "--model", MODEL,
                  "--gate-data", str(scratch / "gate.csv"), "--label-column", "target",
                  "--metric", "accuracy", "--min", "0.9", "--strategy", "canary",
                  "--canary-percent", "20", "--bake", f"{args.bake}s", "--min-requests", "10")
        load = Load(serve, serve.key(E))
        for thread in load.threads:
            thread.start()
        autos, manuals, version = [], [], 1
        try:
            for index in range(args.runs):
                serve.cli(*policy)
                version += 1
                autos.append(auto_run(serve, scratch, load, version, events))
                serve.cli("online-endpoint", "auto-deploy", "disable", "-n", E)
                version += 1
                manuals.append(manual_run(serve, scratch, load, version, args.bake))
                auto, manual = autos[-1], manuals[-1]
                print(f"run {index + 1}: auto first live {auto['first_live_s']:.2f} s, done "
                      f"{auto['run_done_s']:.2f} s; manual first live "
                      f"{manual['first_live_s']:.2f} s, done {manual['promoted_s']:.2f} s",
                      flush=True)
        finally:
            load.stop.set()
            for thread in load.threads:
                thread.join(60)
    auto_first = statistics.median(r["first_live_s"] for r in autos)
    manual_first = statistics.median(r["first_live_s"] for r in manuals)
    result = {"runs": args.runs, "bake_s": args.bake, "auto": autos, "manual": manuals,
              "median_auto_first_live_s": auto_first, "median_manual_first_live_s": manual_first,
              "ratio_auto_over_manual_first_live": auto_first / manual_first,
              "requests": load.sent, "client_failures": len(load.failures)}
    print(f"median model create → first live request: auto-deploy {auto_first:.2f} s "
          f"(gate included), by hand {manual_first:.2f} s (no gate); ratio "
          f"{auto_first / manual_first:.2f}; {load.sent} client requests, "
          f"{len(load.failures)} failed")
    print("events of the first auto run (s after model create, type):")
    for at, kind in autos[0]["events"]:
        print(f"  {at:7.3f}  io.scoregate.autodeploy.{kind}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if not load.failures else 1


if __name__ == "__main__":
    sys.exit(main())

"""Cold start of a deployment scaled to zero: how long its first request waits.

    python benchmarks/autoscaling/cold_start.py [--cycles 3] [--json out.json]

Serves the bundled blue-green example (config/examples/blue-green, models trained into a temp
folder) with `blue` autoscaled to zero (`min_instances: 0`, `scale_in_cooldown: 1`), next to a
trivial scoring script (`init()` and `run()` do nothing) scaled the same way, as the baseline of
the same run: what any Python instance costs (interpreter, scoring server, probe) against what
the example adds (scikit-learn and joblib imports, the model load). Each cycle waits until both
have no instance, then times one request to each (the wait for an instance included), then
one more to each, warm. Reported: every sample, the medians, and the ratio example / trivial.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common.children import Children, exit_on_signals, wait_until  # noqa: E402
from benchmarks.common.serve import Serve, start_serve  # noqa: E402

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"
ENDPOINT = "my-endpoint"
ZERO = ("scale_settings: {type: target_utilization, min_instances: 0, max_instances: 1, "
        "polling_interval: 1, scale_in_cooldown: 1}\n"
        "request_settings: {request_timeout_ms: 60000}\n"
        "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 30}\n")


def _config(folder: Path) -> Path:
    """The example, trained, with blue scaled to zero and a trivial deployment beside it."""
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.pkl", "__pycache__"))
    subprocess.run([sys.executable, str(folder / "train.py")], check=True, cwd=folder,
                   capture_output=True, timeout=300)
    (folder / "green-deployment.yml").unlink()
    (folder / "endpoint.yml").write_text(f"name: {ENDPOINT}\nauth_mode: key\n"
                                         "traffic: {blue: 100}\n")
    blue = folder / "blue-deployment.yml"
    blue.write_text(blue.read_text().replace("instance_count: 1\n", "") + ZERO)
    (folder / "trivial").mkdir()
    (folder / "trivial" / "score.py").write_text("def init():\n    pass\n\n"
                                                 "def run(raw_data):\n    return []\n")
    (folder / "trivial.yml").write_text(
        f"name: trivial\nendpoint_name: {ENDPOINT}\n"
        "code_configuration: {code: trivial, scoring_script: score.py}\n" + ZERO)
    return folder


def _instances(serve: Serve, name: str) -> int:
    shown = serve.cli_json("online-deployment", "show", "--name", name,
                           "--endpoint-name", ENDPOINT)
    return len(shown["instances"])


def _timed(serve: Serve, key: str, body: bytes, name: str) -> float:
    started = time.perf_counter()
    answer = serve.score(ENDPOINT, body, key, name)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{name}: {answer.status_code} {answer.text}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exit_on_signals()
    samples: dict[str, list[float]] = {"blue": [], "trivial": [], "blue_warm": [],
                                       "trivial_warm": []}
    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp) / "logs") as children:
        folder = _config(Path(tmp) / "blue-green")
        serve = start_serve(children, Path(tmp) / "home", str(folder))
        key = serve.key(ENDPOINT)
        body = (folder / "sample-request.json").read_bytes()
        for cycle in range(args.cycles):
            for name in ("blue", "trivial"):
                wait_until(lambda name=name: _instances(serve, name) == 0, 60,
                           f"{name} to scale to zero")
            for name in ("blue", "trivial"):  # one after the other: never two starts at once
                samples[name].append(_timed(serve, key, body, name))
                samples[f"{name}_warm"].append(_timed(serve, key, body, name))
            print(f"cycle {cycle + 1}: example {samples['blue'][-1]:.2f} s, trivial "
                  f"{samples['trivial'][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    result = {"samples_s": samples, "median_s": medians,
              "ratio_example_to_trivial": medians["blue"] / medians["trivial"],
              "load_average": os.getloadavg()}
    print(f"cold start, median of {args.cycles}: example {medians['blue']:.2f} s, trivial "
          f"scoring script {medians['trivial']:.2f} s (x{result['ratio_example_to_trivial']:.2f}"
          f"); warm: {medians['blue_warm'] * 1000:.1f} ms / "
          f"{medians['trivial_warm'] * 1000:.1f} ms; load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

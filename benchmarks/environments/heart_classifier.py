"""azureml-examples' heart classifier served online by scoregate, in its own environment.

    python benchmarks/environments/heart_classifier.py MODEL_FOLDER [--data CSV] [--rows 5]

MODEL_FOLDER: `cli/endpoints/batch/deploy-models/heart-classifier-mlflow/deployment-simple/model`
of a checkout of Azure/azureml-examples (MLflow, pickled with scikit-learn 1.1.2 and xgboost
1.4.2; its `conda.yaml` asks for Python 3.8.5). `--data` defaults to the sample's
`data/heart-unlabeled-0.csv` (two folders up from the model); a CSV with a `target` column
(the sample's training data, `cli/endpoints/batch/deploy-pipelines/training-with-components/
data/train/heart.csv`) is scored without it and the answer compared with it (`accuracy`).

Runs `scoregate serve` in a temporary state folder (uv's cache too unless `--uv-cache`, so the
build is cold and downloads from PyPI), creates an endpoint and a no-code MLflow deployment of
the model (no `environment`: the model's own files decide it, as on Azure), times
`online-deployment create` (the environment's build included), then sends the first rows of the
CSV and prints the answer and the environment's status as JSON. Not part of the test suite:
it downloads about 1 GB.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common.children import Children  # noqa: E402
from benchmarks.common.serve import start_serve  # noqa: E402

ENDPOINT = "heart"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the sample's model folder (with MLmodel)")
    parser.add_argument("--data", type=Path, help="a CSV of the sample's unlabelled data")
    parser.add_argument("--rows", type=int, default=5, help="how many rows to score (0: all)")
    parser.add_argument("--uv-cache", type=Path, help="uv's cache (default: an empty one)")
    args = parser.parse_args()
    data = args.data or args.model.resolve().parents[1] / "data" / "heart-unlabeled-0.csv"
    if not (args.model / "MLmodel").is_file():
        raise SystemExit(f"{args.model}: no MLmodel file: give the sample's model folder")
    with tempfile.TemporaryDirectory(prefix="scoregate-heart-") as temp:
        outcome = run(Path(temp), args.model.resolve(), data, args.rows, args.uv_cache)
    print(json.dumps(outcome, indent=2))
    return 0 if outcome.get("predictions") is not None else 1


def run(folder: Path, model: Path, data: Path, rows: int,
        uv_cache: Path | None = None) -> dict[str, Any]:
    shutil.copytree(model, folder / "model")
    (folder / "endpoint.yml").write_text(f"name: {ENDPOINT}\nauth_mode: key\n")
    (folder / "deployment.yml").write_text(
        f"name: xgboost\nendpoint_name: {ENDPOINT}\ninstance_count: 1\n"
        "model:\n  name: heart-classifier-mlflow\n  version: 1\n  path: model\n"
        "  type: mlflow_model\n"
        "readiness_probe: {initial_delay: 0, period: 2, failure_threshold: 60}\n")
    request, labels = _request(data, rows)
    (folder / "request.json").write_text(json.dumps(request))
    home = folder / "home"
    flags = ("--environments", str(home / "environments"),
             "--uv-cache", str(uv_cache or folder / "uv-cache"))
    with Children(folder / "logs") as children:
        serve = start_serve(children, home, flags=flags)

        def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return serve.cli(*args, check=check, timeout=1800)

        cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
        started = time.monotonic()
        created = cli("online-deployment", "create", "-f", str(folder / "deployment.yml"),
                      "--all-traffic", check=False)
        took = round(time.monotonic() - started, 1)
        shown = serve.cli_json("online-deployment", "show", "--name", "xgboost",
                               "--endpoint-name", ENDPOINT)
        outcome: dict[str, Any] = {
            "create_s": took, "create_exit": created.returncode,
            "progress": created.stderr.splitlines()[-3:],
            "provisioning_state": shown.get("provisioning_state"),
            "environment_status": shown.get("environment_status"), "predictions": None}
        if created.returncode != 0:
            outcome["logs_tail"] = cli("online-deployment", "get-logs", "--name", "xgboost",
                                       "--endpoint-name", ENDPOINT, "--lines", "40",
                                       check=False).stdout[-4000:]
            return outcome
        answer = cli("online-endpoint", "invoke", "--name", ENDPOINT, "--request-file",
                     str(folder / "request.json"))
        predictions = json.loads(answer.stdout)
        outcome["predictions"] = predictions
        if labels is not None:
            right = sum(int(p == t) for p, t in zip(predictions, labels, strict=True))
            outcome["accuracy"] = {"right": right, "of": len(labels)}
        return outcome


def _request(data: Path, rows: int) -> tuple[dict[str, Any], list[int] | None]:
    """The first rows in Azure's `input_data` split form, typed as the model's signature, and
    their labels when the CSV has a `target` column."""
    with open(data, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        table = list(itertools.islice(reader, rows or None))
    labels = None
    if "target" in header:
        at = header.index("target")
        labels = [int(row.pop(at)) for row in table]
        header.pop(at)
    values = [[_typed(column, cell) for column, cell in zip(header, row, strict=True)]
              for row in table]
    return {"input_data": {"columns": header, "data": values}}, labels


def _typed(column: str, cell: str) -> object:
    if column == "thal":
        return cell
    return float(cell) if column == "oldpeak" else int(cell)


if __name__ == "__main__":
    raise SystemExit(main())

"""`online-endpoint evaluate` through a real `scoregate serve` with three managed deployments:
green predicts from a threshold on x0 (how the labels were made, bar 10% noise), blue from x1
(noise), and shape checks that it gets MLflow's body. The test works out each prediction
itself and checks the printed figures against scikit-learn's."""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sklearn import metrics as sk  # type: ignore[import-untyped]

from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "eval-ep"
ROWS = 120
COLUMNS = ("x0", "x1", "y", "x2")  # the label sits between features: file order must hold
SCORE_PY = '''
import json, os

KIND = os.environ["EVAL_KIND"]


def init():
    pass


def run(raw_data):
    body = json.loads(raw_data)
    if KIND == "shape":
        table = body["input_data"]
        assert set(table) == {"columns", "data"}, table.keys()
        assert table["columns"] == ["x0", "x1", "x2"], table["columns"]
        assert all(isinstance(row, list) and len(row) == 3 for row in table["data"])
        return [int(row[0] > 0.5) for row in table["data"]]
    rows = body["data"]
    if KIND == "green":
        return {"predictions": [int(row[0] > 0.5) for row in rows]}
    return [int(row[1] > 0.5) for row in rows]
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, Path]]:
    folder = tmp_path_factory.mktemp("evaluate")
    config = folder / "config"
    (config / "code").mkdir(parents=True)
    (config / "code" / "score.py").write_text(SCORE_PY)
    (config / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\n"
                                         "traffic: {blue: 100, green: 0, shape: 0}\n"
                                         "mirror_traffic: {green: 10}\n")
    for name in ("blue", "green", "shape"):
        (config / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {E}\n"
            "code_configuration: {code: code, scoring_script: score.py}\n"
            f"environment_variables: {{EVAL_KIND: {name}}}\n"
            "request_settings: {max_concurrent_requests_per_instance: 2}\n"
            "readiness_probe: {initial_delay: 0, period: 1}\n"
            "liveness_probe: {initial_delay: 0, period: 1}\n")
    data = folder / "labelled.csv"
    generator = random.Random(5)
    lines = [",".join(COLUMNS)]
    for _ in range(ROWS):
        x0, x1, x2 = (round(generator.random(), 4) for _ in range(3))
        label = int(x0 > 0.5) ^ int(generator.random() < 0.1)
        lines.append(f"{x0},{x1},{label},{x2}")
    data.write_text("\n".join(lines) + "\n")
    with ProcessGroup(folder / "process-logs") as processes:
        gateway = start_serve(processes, folder / "home", str(config))
        for name in ("blue", "green", "shape"):
            wait_until(partial(_ready, gateway, name), timeout=90, what=f"{name} to be ready")
        yield gateway, data


def _ready(gateway: RunningGateway, name: str) -> bool:
    shown = gateway.cli_json("online-deployment", "show", "-n", name, "-e", E)
    return bool(shown["instances"]) and all(i["state"] == "ready" for i in shown["instances"])


def _rows(data: Path) -> tuple[list[list[float]], list[int]]:
    lines = [line.split(",") for line in data.read_text().splitlines()[1:]]
    return [[float(x0), float(x1), float(x2)] for x0, x1, _, x2 in lines], \
        [int(line[2]) for line in lines]


def _expected(data: Path, deployment: str) -> tuple[list[int], list[int]]:
    features, labels = _rows(data)
    column = 1 if deployment == "blue" else 0
    return labels, [int(row[column] > 0.5) for row in features]


def _evaluate(gateway: RunningGateway, data: Path, *args: str) -> dict[str, Any]:
    result = gateway.cli("online-endpoint", "evaluate", "-n", E, "--data", str(data),
                         "--label-column", "y", *args, "-o", "json")
    return {"report": json.loads(result.stdout), "stderr": result.stderr}


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["deployment"]: row for row in report["deployments"]}


def test_f1_matches_sklearn_and_the_suggested_command_is_accepted(
        served: tuple[RunningGateway, Path]) -> None:
    gateway, data = served
    answer = _evaluate(gateway, data, "--deployments", "blue,green", "--metric", "f1",
                       "--suggest-traffic")
    report = answer["report"]
    rows = _by_name(report)
    assert list(rows) == ["blue", "green"] and report["metric"] == "f1"
    for name in ("blue", "green"):
        truth, predicted = _expected(data, name)
        assert rows[name]["f1"] == pytest.approx(sk.f1_score(truth, predicted, pos_label=1))
        assert (rows[name]["errors"], rows[name]["rows_scored"]) == (0, ROWS)
        assert 0 < rows[name]["latency_p50_ms"] <= rows[name]["latency_p99_ms"]
    assert rows["green"]["f1"] > rows["blue"]["f1"]
    assert "(100%)" in answer["stderr"]  # progress, one line per tenth off a terminal

    suggestion = report["suggestion"]
    assert suggestion["best"] == "green"
    assert suggestion["traffic"] == {"blue": 50, "green": 50, "shape": 0}
    command = shlex.split(suggestion["command"])
    assert command[:3] == ["scoregate", "online-endpoint", "update"]
    assert "--mirror-traffic" in command  # green mirrors today: live traffic needs that off
    gateway.cli(*command[1:])
    shown = gateway.cli_json("online-endpoint", "show", "-n", E)
    assert shown["traffic"] == suggestion["traffic"] and shown["mirror_traffic"] == {}
    again = _evaluate(gateway, data, "--deployments", "blue,green", "--metric", "f1",
                      "--suggest-traffic")["report"]["suggestion"]
    assert again["traffic"] == {"blue": 25, "green": 75, "shape": 0}  # 1:1, then 1:3


def test_mlflow_bodies_reach_the_script_that_checks_their_shape(
        served: tuple[RunningGateway, Path]) -> None:
    gateway, data = served
    truth, predicted = _expected(data, "shape")
    mlflow = _by_name(_evaluate(gateway, data, "--deployments", "shape", "--format", "mlflow",
                                "--batch-size", "7")["report"])["shape"]
    assert mlflow["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert (mlflow["errors"], mlflow["requests"], mlflow["rows_scored"]) == (0, 18, ROWS)

    azure = _by_name(_evaluate(gateway, data, "--deployments", "shape",
                               "--batch-size", "7")["report"])["shape"]
    assert (azure["errors"], azure["rows_scored"], azure["accuracy"]) == (18, 0, None)
    assert "HTTP 424" in azure["first_error"] or "HTTP 500" in azure["first_error"]


def test_the_table_shows_the_same_figures(served: tuple[RunningGateway, Path]) -> None:
    gateway, data = served
    result = gateway.cli("online-endpoint", "evaluate", "-n", E, "--data", str(data),
                         "--label-column", "y", "--deployments", "green,blue", "--metric", "mae",
                         "--batch-size", "10")
    lines = result.stdout.splitlines()
    assert lines[0] == f"endpoint {E}: mae (lower is better), {ROWS} rows, 10 per request"
    assert lines[2].split()[:2] == ["deployment", "mae"]
    for name, line in zip(("green", "blue"), lines[4:6], strict=False):
        truth, predicted = _expected(data, name)
        cells = line.split()
        assert cells[0] == name
        assert cells[1] == f"{sk.mean_absolute_error(truth, predicted):.4f}"
        assert cells[-2:] == ["0", f"{ROWS}/{ROWS}"]


def test_default_metric_and_every_deployment(served: tuple[RunningGateway, Path]) -> None:
    gateway, data = served
    report = _evaluate(gateway, data, "--batch-size", "40")["report"]
    assert report["metric"] == "accuracy"  # labels 0 and 1 look like classes
    rows = _by_name(report)
    assert set(rows) == {"blue", "green", "shape"}
    assert rows["shape"]["errors"] == 3  # it refuses the Azure body
    for name in ("blue", "green"):
        truth, predicted = _expected(data, name)
        assert rows[name]["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))


def test_bad_input_is_one_clear_line(served: tuple[RunningGateway, Path], tmp_path: Path) -> None:
    gateway, data = served
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    words = tmp_path / "words.csv"
    words.write_text("x,y\n1,cat\n2,dog\n")
    cases = [
        ((str(data), "label"), "label column 'label' is not in"),
        ((str(empty), "y"), "is empty"),
        ((str(data), "y", "--deployments", "blue,purple"),
         "unknown deployment 'purple' of endpoint eval-ep (its deployments: blue, green, shape)"),
        ((str(words), "y", "--metric", "rmse"), "rmse needs numeric labels, but column 'y' holds"),
        ((str(data), "y", "--metric", "f1", "--pos-label", "7"), "--pos-label 7 is not one of"),
    ]
    for (path, label, *extra), message in cases:
        result = gateway.cli("online-endpoint", "evaluate", "-n", E, "--data", path,
                             "--label-column", label, *extra, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout

"""The bundled blue-green example, served by a real `scoregate serve` with real instances."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import joblib  # type: ignore[import-untyped]
import numpy
import pytest

from tests.support.gateway import start_serve, trained_example
from tests.support.processes import ProcessGroup, wait_until

ENDPOINT = "my-endpoint"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example with its models trained, in a temporary folder."""
    return trained_example(tmp_path_factory.mktemp("example") / "blue-green")


def _predict(example: Path, model_folder: str, rows: list[list[float]]) -> list[float]:
    model = joblib.load(example / model_folder / "model" / "sklearn_regression_model.pkl")
    return [float(x) for x in model.predict(numpy.array(rows))]


def test_example_answers_with_the_models_exact_predictions(
    example: Path, processes: ProcessGroup, tmp_path: Path
) -> None:
    gateway = start_serve(processes, tmp_path / "home", str(example))
    body = (example / "sample-request.json").read_bytes()
    rows = json.loads(body)["data"]
    key = gateway.key(ENDPOINT)
    wait_until(lambda: gateway.score(ENDPOINT, body, key).status_code == 200, timeout=60,
               what="blue to be ready")

    live = gateway.score(ENDPOINT, body, key)
    assert live.status_code == 200
    assert live.headers["azureml-model-deployment"] == "blue"
    assert live.json() == _predict(example, "model-1", rows)
    assert len(live.headers["x-request-id"]) == 36

    # The header reaches green, the mirror deployment, and green's model answers.
    wait_until(lambda: gateway.score(ENDPOINT, body, key, "green").status_code == 200,
               timeout=60, what="green to be ready")
    direct = gateway.score(ENDPOINT, body, key, "green")
    assert direct.headers["azureml-model-deployment"] == "green"
    assert direct.json() == _predict(example, "model-2", rows)
    assert direct.json() != live.json()

    # Without the key nothing is scored.
    refused = httpx.post(f"{gateway.scoring_url}/endpoints/{ENDPOINT}/score", content=body)
    assert refused.status_code == 401
    assert "message" in refused.json()

    # The 20% mirror reaches green: its log shows run() calls for requests nobody sent it.
    logs_before = gateway.cli("online-deployment", "get-logs", "--name", "green",
                              "--endpoint-name", ENDPOINT).stdout.count("request received")
    with httpx.Client(timeout=30) as client:
        for _ in range(100):
            assert gateway.score(ENDPOINT, body, key, client=client).status_code == 200

    def mirrored() -> int:
        logs = gateway.cli("online-deployment", "get-logs", "--name", "green",
                           "--endpoint-name", ENDPOINT).stdout
        return logs.count("request received") - logs_before

    # 100 requests at 20%: fewer than 5 copies would be a 4-sigma miss.
    wait_until(lambda: mirrored() >= 5, timeout=30, what="mirrored requests in green's log")
    assert mirrored() <= 45


def test_a_killed_instance_is_restarted_while_the_other_keeps_serving(
    example: Path, processes: ProcessGroup, tmp_path: Path
) -> None:
    gateway = start_serve(processes, tmp_path / "home", str(example))
    body = (example / "sample-request.json").read_bytes()
    key = gateway.key(ENDPOINT)
    gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", ENDPOINT,
                "--set", "instance_count=2")

    def instances() -> list[dict[str, object]]:
        shown = gateway.cli_json("online-deployment", "show", "--name", "blue",
                                 "--endpoint-name", ENDPOINT)
        return list(shown["instances"])

    wait_until(lambda: sum(i["state"] == "ready" for i in instances()) == 2, timeout=90,
               what="two ready blue instances")
    victim = instances()[0]
    os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

    failures = 0
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=30) as client:
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            if gateway.score(ENDPOINT, body, key, client=client).status_code != 200:
                failures += 1
            now = {str(i["id"]): i for i in instances()} if sent % 20 == 0 else {}
            if now and now[str(victim["id"])]["state"] == "ready" and \
                    int(now[str(victim["id"])]["restarts"]) >= 1:  # type: ignore[call-overload]
                break
        else:
            pytest.fail("the killed instance was not restarted within 60 s")
    assert failures == 0, f"{failures} of {sent} requests failed while an instance was down"


def test_a_yaml_error_names_the_file_and_the_key(processes: ProcessGroup, tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "endpoint.yml").write_text("name: my-endpoint\nauth_mode: key\n")
    (folder / "blue.yml").write_text(
        "name: blue\nendpoint_name: my-endpoint\nurl: http://127.0.0.1:9/score\n"
        "request_settings:\n  request_timout_ms: 100\n")
    started = processes.python("-m", "control_plane", "serve", str(folder), "--port", "0",
                               "--admin-port", "0", env={"SCOREGATE_HOME": str(tmp_path / "h")})
    assert started.proc.wait(60) != 0
    output = started.log()
    assert "blue.yml" in output and "request_timout_ms" in output
    assert "Traceback" not in output

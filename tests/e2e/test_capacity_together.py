"""Issue 15's "done when": an autoscaled deployment, scaled out by its load, is updated by a
rolling update while the data plane serves, under that load, and no request fails. The
rolling update replaces the instances that actually run (the autoscaler's count, not the
YAML's first `instance_count`), a batch at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_walkthrough import Load
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "together-endpoint"
SCORE = ("import os, time\n\ndef init():\n    pass\n\n"
         "def run(raw_data):\n    time.sleep(0.02)\n"
         "    return {'version': os.environ.get('VERSION', 'v1')}\n")


def _config(folder: Path) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(SCORE)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{web: 100}}\n")
    (folder / "web.yml").write_text(
        f"name: web\nendpoint_name: {E}\ninstance_count: 1\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "environment_variables: {VERSION: v1}\n"
        "request_settings: {max_concurrent_requests_per_instance: 4}\n"
        "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 5}\n"
        "scale_settings:\n  type: target_utilization\n  min_instances: 1\n  max_instances: 3\n"
        "  polling_interval: 1\n  target_utilization_percentage: 30\n"
        "  scale_out_cooldown: 0\n  scale_in_cooldown: 600\n"
        "rolling_update: {max_surge: 1, max_unavailable: 0}\n")
    return folder


def _show(gateway: RunningGateway) -> Any:
    return gateway.cli_json("online-deployment", "show", "--name", "web", "--endpoint-name", E)


def _ready(gateway: RunningGateway, count: int) -> bool:
    instances = _show(gateway)["instances"]
    return len(instances) == count and all(i["state"] == "ready" for i in instances)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_autoscaled_deployment_rolls_under_load_failing_nothing(
        processes: ProcessGroup, tmp_path: Path, workers: int) -> None:
    folder = _config(tmp_path / "config")
    gateway = start_serve(processes, tmp_path / "home", str(folder),
                          extra=("--workers", str(workers)) if workers > 1 else ())
    key = gateway.key(E)
    load = Load(gateway, key, b"{}", endpoint=E)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(4)]
    try:
        for thread in threads:  # 4 in flight, 4 per instance at 30%: 4 wanted, capped at 3
            thread.start()
        wait_until(lambda: _ready(gateway, 3), timeout=120, what="scaled out to 3 instances")
        assert _show(gateway)["instance_count"] == 1  # the YAML's first count, kept as written
        result = gateway.cli("online-deployment", "update", "--name", "web", "--endpoint-name",
                             E, "--set", "environment_variables.VERSION=v2", timeout=240)
        after = load.sent + 50
        wait_until(lambda: load.sent_at_least(after), timeout=60, what="load after the update")
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    shown = _show(gateway)
    assert shown["provisioning_state"] == "Succeeded", result.stderr
    status = shown["rolling_update_status"]
    assert (status["batch"], status["batches"], status["state"]) == (3, 3, "succeeded"), status
    assert shown["scale_status"]["desired_instances"] == 3
    answers = {gateway.score(E, b"{}", key).json()["version"] for _ in range(20)}
    assert answers == {"v2"}

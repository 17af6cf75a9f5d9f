"""Rolling updates with real processes (docs/rolling-updates.md): an update replaces the
instances a batch at a time under load and fails no request; a version whose run() fails is
judged by the first batch's bake and rolled back with the verdict; a `serve` killed with -9
mid-update rolls the update back cleanly at its next start."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_walkthrough import Load
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "roll-endpoint"
SCORE = ("import os\n\ndef init():\n"
         "    if os.environ.get('BROKEN_INIT') == '1':\n"
         "        raise RuntimeError('this version cannot load its model')\n\n"
         "def run(raw_data):\n"
         "    if os.environ.get('BROKEN') == '1':\n"
         "        raise RuntimeError('this version is broken')\n"
         "    return {'version': os.environ.get('VERSION', 'v1')}\n")


def _config(folder: Path, rolling: str) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(SCORE)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    (folder / "blue.yml").write_text(
        f"name: blue\nendpoint_name: {E}\ninstance_count: 3\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "environment_variables: {VERSION: v1}\n"
        "request_settings: {max_concurrent_requests_per_instance: 4}\n"
        "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 5}\n"
        f"rolling_update: {rolling}\n")
    return folder


def _show(gateway: RunningGateway) -> Any:
    return gateway.cli_json("online-deployment", "show", "--name", "blue", "--endpoint-name", E)


def _serving(gateway: RunningGateway, version: str, count: int = 3) -> bool:
    shown = _show(gateway)
    ready = [i for i in shown["instances"] if i["state"] == "ready"]
    return (len(ready) == count == len(shown["instances"])
            and shown["environment_variables"].get("VERSION") == version)


def _update(gateway: RunningGateway, *sets: str, check: bool = True) -> Any:
    args = [arg for value in sets for arg in ("--set", value)]
    return gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", E,
                       *args, check=check, timeout=240)


def _loaded(gateway: RunningGateway, key: str) -> tuple[Load, list[threading.Thread]]:
    load = Load(gateway, key, b"{}", endpoint=E)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    return load, threads


def _stop(load: Load, threads: list[threading.Thread]) -> None:
    load.stop.set()
    for thread in threads:
        thread.join(60)


def test_rolling_update_under_load_fails_no_request(processes: ProcessGroup,
                                                    tmp_path: Path) -> None:
    folder = _config(tmp_path / "config", "{max_surge: 1, max_unavailable: 0}")
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    key = gateway.key(E)
    load, threads = _loaded(gateway, key)
    try:
        wait_until(lambda: load.sent_at_least(50), timeout=60, what="load before the update")
        result = _update(gateway, "environment_variables.VERSION=v2")
        after = load.sent + 50
        wait_until(lambda: load.sent_at_least(after), timeout=60,
                   what="load after the update")
    finally:
        _stop(load, threads)
    # the CLI prints the batches it saw while polling (a quick batch may pass between polls);
    # max_surge 1: never more than instance_count + 1 instances (draining ones, out of
    # rotation, do not count, as terminating pods in Kubernetes)
    lines = [line for line in result.stderr.splitlines() if "/3 rolling (" in line]
    assert lines, result.stderr
    assert all(line.count(" blue-") - line.count(" draining") <= 4 for line in lines), \
        result.stderr
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    shown = _show(gateway)
    assert shown["provisioning_state"] == "Succeeded"
    status = shown["rolling_update_status"]
    assert (status["batch"], status["batches"], status["state"]) == (3, 3, "succeeded")
    answer = gateway.score(E, b"{}", key).json()
    assert answer == {"version": "v2"}


@pytest.mark.parametrize(("broken", "verdict"), [
    ("BROKEN=1", "guardrails tripped: error-rate"),  # run() fails: the bake judges it
    ("BROKEN_INIT=1", "init() raised"),  # init() fails: the batch never gets ready
])
def test_broken_version_is_rolled_back_after_the_first_batch(
        processes: ProcessGroup, tmp_path: Path, broken: str, verdict: str) -> None:
    folder = _config(tmp_path / "config",
                     "{max_surge: 1, bake_s: 2, max_error_rate: 0.05, min_requests: 5}")
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    key = gateway.key(E)
    load, threads = _loaded(gateway, key)
    try:
        wait_until(lambda: load.sent_at_least(20), timeout=60, what="load before the update")
        result = _update(gateway, f"environment_variables.{broken}", check=False)
    finally:
        _stop(load, threads)
    assert result.returncode == 1, result.stderr
    assert "rolling update stopped at batch 1/3" in result.stderr, result.stderr
    assert verdict in result.stderr and "batch 2/3" not in result.stderr, result.stderr
    shown = _show(gateway)
    assert shown["provisioning_state"] == "Failed"
    assert shown["rolling_update_status"]["state"] == "rolled_back"
    assert broken.split("=")[0] not in shown["environment_variables"]
    wait_until(lambda: _serving(gateway, "v1"), timeout=90, what="the old version back")
    assert gateway.score(E, b"{}", key).json() == {"version": "v1"}


def test_kill_9_mid_update_rolls_back_at_the_next_start(processes: ProcessGroup,
                                                       tmp_path: Path) -> None:
    folder = _config(tmp_path / "config", "{max_surge: 1, bake_s: 600}")
    home = tmp_path / "home"
    gateway = start_serve(processes, home, str(folder))
    gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", E,
                "--set", "environment_variables.VERSION=v2", "--no-wait")

    def baking() -> bool:
        status = _show(gateway).get("rolling_update_status") or {}
        return status.get("state") == "baking" and status.get("batch") == 1
    wait_until(baking, timeout=90, what="the first batch to bake")
    os.kill(gateway.started.proc.pid, signal.SIGKILL)
    gateway.started.proc.wait(30)
    restarted = start_serve(processes, home)
    wait_until(lambda: _show(restarted)["provisioning_state"] == "Failed", timeout=90,
               what="the interrupted update to be decided")
    shown = _show(restarted)
    assert "interrupted at batch 1/3" in shown["provisioning_message"]
    assert shown["rolling_update_status"]["state"] == "rolled_back"
    wait_until(lambda: _serving(restarted, "v1"), timeout=90, what="the old version serving")
    key = restarted.key(E)
    assert restarted.score(E, b"{}", key).json() == {"version": "v1"}

"""Autoscaling with a real gateway and real scoring processes (docs/autoscaling.md): a load
step scales out within two polling intervals and back in after the cooldown, failing no
request; the bounds hold; a deployment scales to zero and back; a fixed instance_count is
refused with what to change instead; every decision is in show, the event log and /metrics."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_walkthrough import Load
from tests.support.gateway import RunningGateway, metric, metrics_text, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "auto-endpoint"
POLLING_S = 1
SCALE_IN_COOLDOWN_S = 3
PROBE = "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 3}\n"


def _script(folder: Path, name: str, init_s: float = 0.0, run_s: float = 0.0) -> None:
    (folder / name).write_text(
        f"import os, time\n\ndef init():\n    time.sleep({init_s})\n\n"
        f"def run(raw_data):\n    time.sleep({run_s})\n    return {{'pid': os.getpid()}}\n")


def _folder(tmp_path: Path, live: str, run_s: float = 0.0) -> Path:
    """A config folder: the endpoint (all live traffic to `live`) and code/score.py."""
    folder = tmp_path / "config"
    (folder / "code").mkdir(parents=True)
    _script(folder / "code", "score.py", run_s=run_s)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{{live}: 100}}\n")
    return folder


def _show(gateway: RunningGateway, name: str) -> dict[str, Any]:
    shown: dict[str, Any] = gateway.cli_json("online-deployment", "show", "--name", name,
                                             "--endpoint-name", E)
    return shown


def _decisions(gateway: RunningGateway, name: str) -> list[dict[str, Any]]:
    decisions: list[dict[str, Any]] = _show(gateway, name)["scale_status"]["decisions"]
    return decisions


def _ready(gateway: RunningGateway, name: str, count: int) -> bool:
    instances = _show(gateway, name)["instances"]
    return len(instances) == count and all(i["state"] == "ready" for i in instances)


def _epoch(rfc3339: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_a_load_step_scales_out_then_in_after_the_cooldown_failing_nothing(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "web", run_s=0.05)
    (folder / "web.yml").write_text(
        f"name: web\nendpoint_name: {E}\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "request_settings: {max_concurrent_requests_per_instance: 4}\n" + PROBE +
        "scale_settings:\n  type: target_utilization\n  min_instances: 1\n  max_instances: 3\n"
        f"  polling_interval: {POLLING_S}\n  target_utilization_percentage: 50\n"
        f"  scale_out_cooldown: 0\n  scale_in_cooldown: {SCALE_IN_COOLDOWN_S}\n")
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    key = gateway.key(E)
    load = Load(gateway, key, b"{}", endpoint=E)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(8)]
    try:
        threads[0].start()  # one client: 1 in flight of 4 per instance, under the 50% target
        wait_until(lambda: load.sent_at_least(60), timeout=60, what="one client's requests")
        assert _decisions(gateway, "web") == [] and _ready(gateway, "web", 1)

        stepped_at = time.time()
        for thread in threads[1:]:
            thread.start()  # eight clients: 8 in flight want 4 instances, capped at 3
        wait_until(lambda: any(d["reason"] == "scale_out" for d in _decisions(gateway, "web")),
                   timeout=30, what="a scale-out decision")
        scale_out = next(d for d in _decisions(gateway, "web") if d["reason"] == "scale_out")
        assert _epoch(scale_out["time"]) - stepped_at <= 2 * POLLING_S + 0.5, scale_out
        wait_until(lambda: _ready(gateway, "web", 3), timeout=90, what="3 ready instances")

        load.stop.set()  # back to one client
        for thread in threads:
            thread.join(60)
        load.stop.clear()
        last_out = max(_epoch(d["time"]) for d in _decisions(gateway, "web")
                       if d["reason"] == "scale_out")
        single = threading.Thread(target=load.run, daemon=True)
        threads = [single]
        single.start()
        wait_until(lambda: any(d["reason"] == "scale_in" for d in _decisions(gateway, "web")),
                   timeout=60, what="a scale-in decision")
        scale_in = next(d for d in _decisions(gateway, "web") if d["reason"] == "scale_in")
        assert _epoch(scale_in["time"]) - last_out >= SCALE_IN_COOLDOWN_S, scale_in
        wait_until(lambda: _ready(gateway, "web", 1), timeout=60, what="back to 1 instance")
        enough = load.sent + 30
        wait_until(lambda: load.sent_at_least(enough), timeout=60,
                   what="requests after scaling in")
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"

    decisions = _decisions(gateway, "web")
    assert all(1 <= d["new_instances"] <= 3 for d in decisions), decisions  # the bounds hold
    assert scale_out["utilization_percentage"] > 50  # the first one: 2 or 3, by the window
    assert max(d["new_instances"] for d in decisions) == 3  # 8 in flight want 4: max_instances
    assert _show(gateway, "web")["scale_status"]["desired_instances"] == 1

    events = gateway.cli_json("event", "list", "--type", "io.scoregate.deployment.scaled")
    assert [(e["data"]["old_instances"], e["data"]["new_instances"], e["data"]["reason"])
            for e in events] == [(d["old_instances"], d["new_instances"], d["reason"])
                                 for d in decisions]
    assert events[0]["subject"] == f"endpoints/{E}/deployments/web"
    logged = [line for line in gateway.started.log().splitlines()
              if '"deployment scaled: ' in line and '"deployment":"web"' in line]
    assert len(logged) == len(decisions) and '"reason":"scale_out"' in logged[0], logged
    text = metrics_text(gateway.scoring_url)
    assert metric(text, "scoregate_desired_instances", deployment="web") == 1
    for reason in ("scale_out", "scale_in"):
        assert metric(text, "scoregate_scaling_decisions_total", deployment="web",
                      reason=reason) >= 1

    refused = gateway.cli("online-deployment", "update", "--name", "web", "--endpoint-name", E,
                          "--set", "instance_count=2", check=False)
    assert refused.returncode != 0
    for words in ("is autoscaled", "--set scale_settings.max_instances=N",
                  "--set scale_settings.type=default --set instance_count=N"):
        assert words in refused.stderr, refused.stderr
    gateway.cli("online-deployment", "update", "--name", "web", "--endpoint-name", E,
                "--set", "scale_settings.max_instances=2")  # the bounds are what changes
    assert _show(gateway, "web")["scale_settings"]["max_instances"] == 2
    gateway.cli("online-deployment", "update", "--name", "web", "--endpoint-name", E,
                "--set", "scale_settings.type=default", "--set", "instance_count=2")  # fixed
    fixed = _show(gateway, "web")
    assert fixed["scale_settings"] is None and "scale_status" not in fixed
    wait_until(lambda: _ready(gateway, "web", 2), timeout=60, what="2 fixed instances")


def test_scale_to_zero_and_back(processes: ProcessGroup, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "cold")
    _script(folder / "code", "slow.py", init_s=2.0)
    zero = ("scale_settings: {type: target_utilization, min_instances: 0, max_instances: 1, "
            "polling_interval: 1, scale_in_cooldown: 1}\n")
    (folder / "cold.yml").write_text(
        f"name: cold\nendpoint_name: {E}\n"
        "code_configuration: {code: code, scoring_script: score.py}\n" + PROBE + zero)
    (folder / "late.yml").write_text(  # starts slower than its requests may wait
        f"name: late\nendpoint_name: {E}\n"
        "code_configuration: {code: code, scoring_script: slow.py}\n"
        "request_settings: {request_timeout_ms: 500}\n" + PROBE + zero)
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    key = gateway.key(E)

    for name in ("cold", "late"):  # idle past the cooldown: no instance left
        wait_until(lambda name=name: _ready(gateway, name, 0), timeout=30,
                   what=f"{name} scaled to zero")
        assert _show(gateway, name)["scale_status"]["desired_instances"] == 0
    before = _decisions(gateway, "cold")

    processes.stop(gateway.started, signal.SIGKILL)  # the decided count is stored: kept
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    assert _show(gateway, "cold")["instances"] == [] and _decisions(gateway, "cold") == before
    assert _show(gateway, "cold")["scale_status"]["desired_instances"] == 0

    started = time.perf_counter()
    answer = gateway.score(E, b"{}", key, deployment="cold")
    cold_start_s = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    print(f"cold start of a trivial scoring script: {cold_start_s:.2f} s")
    reasons = [d["reason"] for d in _decisions(gateway, "cold")]
    assert reasons[-2:] == ["scale_in", "cold_start"], reasons

    refused = gateway.score(E, b"{}", key, deployment="late")
    assert refused.status_code == 503, refused.text
    message = refused.json()["message"]
    assert "scaled to zero" in message and "request_timeout_ms" in message, message
    wait_until(lambda: gateway.score(E, b"{}", key, deployment="late").status_code == 200,
               timeout=30, what="late's instance, started by the refused request")
    with httpx.Client(timeout=30) as client:  # warm now: answered at once
        assert gateway.score(E, b"{}", key, deployment="late", client=client).status_code == 200


def test_no_scale_in_while_a_rollout_step_bakes(processes: ProcessGroup, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "web", run_s=0.05)
    (folder / "web.yml").write_text(
        f"name: web\nendpoint_name: {E}\ninstance_count: 2\n"
        "code_configuration: {code: code, scoring_script: score.py}\n" + PROBE +
        "scale_settings: {type: target_utilization, min_instances: 1, max_instances: 2, "
        "polling_interval: 1, scale_in_cooldown: 0}\n")
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    load = Load(gateway, gateway.key(E), b"{}", endpoint=E)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(2)]
    try:
        for thread in threads:  # 2 in flight of 1 per instance: both instances wanted
            thread.start()
        gateway.cli("online-deployment", "create", "--name", "next", "--endpoint-name", E,
                    "-f", str(folder / "web.yml"), "--set", "scale_settings=null",
                    "--set", "instance_count=1")
        wait_until(lambda: _ready(gateway, "web", 2) and _show(gateway, "web")[
            "scale_status"]["desired_instances"] == 2, timeout=30, what="2 instances busy")
        gateway.cli("online-endpoint", "rollout", "start", "-n", E, "--to", "next",
                    "--bake", "10m")  # its first step bakes for the rest of the test
        before = _decisions(gateway, "web")
    finally:
        load.stop.set()  # idle now: one instance would do
        for thread in threads:
            thread.join(60)
    assert load.failures == [], load.failures[:5]
    wait_until(lambda: "rollout step is baking" in _show(gateway, "web")["scale_status"].get(
        "scale_in_held", ""), timeout=30, what="the scale-in to be held")
    assert _ready(gateway, "web", 2) and _decisions(gateway, "web") == before
    gateway.cli("online-endpoint", "rollout", "abort", "-n", E)
    wait_until(lambda: _ready(gateway, "web", 1), timeout=30, what="the scale-in after it")
    [decision] = _decisions(gateway, "web")[len(before):]
    assert (decision["old_instances"], decision["new_instances"], decision["reason"]) == (
        2, 1, "scale_in")

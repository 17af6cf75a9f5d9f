"""Guarded rollouts through a real `scoregate serve`, with deliberately broken greens.

One gateway serves one endpoint with a healthy blue (all traffic) and several greens at 0%:
one that fails every fifth request, one 10× slower, one whose answers differ, one healthy.
Each test starts from blue=100 and drives `scoregate online-endpoint rollout ...` while a
bounded load (a few client threads) runs. Bakes are 2–3 s and `--min-requests` small.
"""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import RunningGateway, start_serve
from tests.support.load import Load as ScoringLoad
from tests.support.processes import ProcessGroup, wait_until

E = "roll-endpoint"
BLUE_SLEEP_S = 0.02
SCRIPTS = {
    "blue": f"time.sleep({BLUE_SLEEP_S})\n    return [1.0]",
    "green-good": f"time.sleep({BLUE_SLEEP_S})\n    return [1.0]",
    "green-fail": f"time.sleep({BLUE_SLEEP_S})\n    if next(COUNT) % 5 == 4:\n"
                  "        raise RuntimeError('every fifth request fails')\n    return [1.0]",
    "green-slow": f"time.sleep({10 * BLUE_SLEEP_S})\n    return [1.0]",
    "green-diff": f"time.sleep({BLUE_SLEEP_S})\n    return [2.0]",
}


def write_config(folder: Path, names: list[str]) -> Path:
    """Endpoint + managed deployments with tiny score.py scripts (probes fast, 4 workers)."""
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    for name in names:
        (code / f"{name}.py").write_text(
            "import itertools\nimport time\n\nCOUNT = itertools.count()\n\n"
            f"def init():\n    pass\n\ndef run(raw_data):\n    {SCRIPTS[name]}\n")
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {E}\n"
            f"code_configuration: {{code: code, scoring_script: {name}.py}}\n"
            "environment_variables: {WORKER_COUNT: '4'}\n"
            "request_settings: {max_concurrent_requests_per_instance: 4}\n"
            "readiness_probe: {initial_delay: 0, period: 1}\n")
    return folder


def Load(gateway: RunningGateway, key: str) -> ScoringLoad:  # noqa: N802 (reads as the class)
    """A few client threads sending requests without a deployment header until stopped."""
    return ScoringLoad(gateway, key, E)


@dataclass
class Receiver:
    """A tiny webhook receiver: refuses the first POST (503) to exercise retries."""

    events: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    content_types: set[str] = field(default_factory=set)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if state.refused == 0:
                state.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            state.content_types.add(self.headers["content-type"])
            state.events.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _answers(running: RunningGateway, key: str, deployment: str) -> bool:
    """The deployment's script ran (its own error, 424, counts: it answered)."""
    return running.score(E, b"{}", key, deployment).status_code in (200, 424)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("rollout")
    folder = write_config(root / "config", list(SCRIPTS))
    with ProcessGroup(root / "process-logs") as processes:
        running = start_serve(processes, root / "home", str(folder))
        key = running.key(E)
        for name in SCRIPTS:
            wait_until(partial(_answers, running, key, name), timeout=90,
                       what=f"{name} to be ready")
        yield running


@pytest.fixture
def key(gateway: RunningGateway) -> str:
    """Every test starts from blue=100 and no mirror (no rollout is running between tests)."""
    gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=100",
                "--mirror-traffic", "blue=0")
    return gateway.key(E)


def rollout(gateway: RunningGateway) -> Any:
    return gateway.cli_json("online-endpoint", "rollout", "show", "--name", E)


def traffic(gateway: RunningGateway) -> dict[str, int]:
    return {k: v for k, v in gateway.cli_json("online-endpoint", "show", "-n", E)["traffic"]
            .items() if v}


def start(gateway: RunningGateway, *flags: str, check: bool = True) -> Any:
    return gateway.cli("online-endpoint", "rollout", "start", "--name", E, *flags, check=check,
                       timeout=180)


def test_a_green_failing_20_percent_is_rolled_back_at_the_first_step(
        gateway: RunningGateway, key: str) -> None:
    with Load(gateway, key):
        result = start(gateway, "--to", "green-fail", "--strategy", "canary",
                       "--canary-percent", "20", "--bake", "3s", "--min-requests", "20",
                       "--max-error-rate", "0.05", "--wait", check=False)
    assert result.returncode == 1, result.stderr
    assert "rolled back" in result.stderr and "error-rate" in result.stderr
    shown = rollout(gateway)
    assert shown["state"] == "rolled_back" and shown["current"] == 0
    verdict = shown["steps"][0]["verdicts"][-1]
    assert verdict["outcome"] == "tripped"
    (check,) = [c for c in verdict["checks"] if not c["ok"]]
    assert check["guardrail"] == "error-rate" and check["threshold"] == 0.05
    assert 0.1 <= check["measured"] <= 0.3, check  # every fifth request fails
    assert verdict["requests"] >= 20
    assert shown["steps"][1]["started_at"] is None  # never went past the first step
    assert traffic(gateway) == {"blue": 100}  # exactly where it started


def test_a_green_10x_slower_is_rolled_back_by_the_latency_guardrail(
        gateway: RunningGateway, key: str) -> None:
    with Load(gateway, key) as load:
        start(gateway, "--to", "green-slow", "--canary-percent", "20", "--bake", "3s",
              "--min-requests", "15", "--max-latency-factor", "2", "--max-error-rate", "0.5")
        wait_until(lambda: rollout(gateway)["state"] != "running", timeout=60,
                   what="the latency guardrail's verdict")
    shown = rollout(gateway)
    assert shown["state"] == "rolled_back", shown["reason"]
    tripped = [c for c in shown["steps"][0]["verdicts"][-1]["checks"] if not c["ok"]]
    assert [c["guardrail"] for c in tripped] == ["latency-factor"]
    assert tripped[0]["measured"] > 2 and tripped[0]["threshold"] == 2
    assert load.seen["green-slow"] > 0
    assert traffic(gateway) == {"blue": 100}


def test_manual_changes_are_refused_during_a_rollout_and_abort_restores_the_start(
        gateway: RunningGateway, key: str) -> None:
    gateway.cli("online-endpoint", "update", "--name", E, "--mirror-traffic", "green-diff=10")
    running = json.loads(start(gateway, "--to", "green-good", "--steps", "25", "--bake",
                               "10m").stdout)
    assert traffic(gateway) == {"blue": 75, "green-good": 25}
    for flag, value in (("--traffic", "blue=50 green-good=50"),
                        ("--mirror-traffic", "green-slow=10")):
        refused = gateway.cli("online-endpoint", "update", "--name", E, flag, value, check=False)
        assert refused.returncode == 1
        assert f"rollout {running['id']}" in refused.stderr and "Traceback" not in refused.stderr
    second = start(gateway, "--to", "green-slow", check=False)
    assert second.returncode == 1 and running["id"] in second.stderr
    paused = gateway.cli_json("online-endpoint", "rollout", "pause", "--name", E)
    assert paused["state"] == "paused" and traffic(gateway) == {"blue": 75, "green-good": 25}
    aborted = gateway.cli_json("online-endpoint", "rollout", "abort", "--name", E)
    assert aborted["state"] == "aborted"
    assert traffic(gateway) == {"blue": 100}
    assert gateway.cli_json("online-endpoint", "show", "-n", E)["mirror_traffic"] == \
        {"green-diff": 10}


def test_a_green_whose_answers_differ_is_stopped_in_the_mirror_phase(
        gateway: RunningGateway, key: str) -> None:
    with Load(gateway, key) as load:
        result = start(gateway, "--to", "green-diff", "--mirror-first", "50", "--mirror-bake",
                       "3s", "--bake", "2s", "--min-requests", "20", "--min-agreement", "0.99",
                       "--wait", check=False)
    assert result.returncode == 1
    shown = rollout(gateway)
    assert shown["state"] == "rolled_back" and shown["current"] == 0
    assert shown["steps"][0]["phase"] == "mirror"
    tripped = [c for c in shown["steps"][0]["verdicts"][-1]["checks"] if not c["ok"]]
    assert [c["guardrail"] for c in tripped] == ["agreement"]
    assert tripped[0]["measured"] == 0.0 and tripped[0]["threshold"] == 0.99
    assert load.seen["green-diff"] == 0  # no client ever got its answer
    shown_endpoint = gateway.cli_json("online-endpoint", "show", "-n", E)
    assert shown_endpoint["mirror_traffic"] == {} and traffic(gateway) == {"blue": 100}


def test_a_healthy_green_is_promoted_without_one_failed_request(
        gateway: RunningGateway, key: str, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    with Load(gateway, key) as load:
        result = start(gateway, "--to", "green-good", "--mirror-first", "20", "--mirror-bake",
                       "2s", "--min-agreement", "0.99", "--steps", "30,60", "--bake", "2s",
                       "--min-requests", "10", "--webhook", url, "--wait")
        seen_at_end = Counter(load.seen)
        wait_until(lambda: load.seen["green-good"] - seen_at_end["green-good"] >= 20,
                   timeout=30, what="requests after the promotion")
    assert load.failures == [], load.failures[:5]
    assert load.seen["blue"] > 0 and load.seen["green-good"] > 0
    final = json.loads(result.stdout)
    assert final["state"] == "succeeded"
    assert [s["status"] for s in final["steps"]] == ["passed"] * 4
    assert result.stderr.count(": passed: ") == 4  # one verdict line per step
    assert traffic(gateway) == {"green-good": 100}
    # The webhook got every event, in order, as CloudEvents, despite one refused POST.
    wait_until(lambda: any(e["type"].endswith(".promoted") for e in hook.events), timeout=30,
               what="the promoted event")
    kinds = [e["type"].rsplit(".", 1)[1] for e in hook.events]
    assert hook.refused == 1
    assert kinds == ["started", "step", "step", "step", "step", "promoted"], kinds
    assert all(e["specversion"] == "1.0" and e["data"]["rollout"] == final["id"]
               for e in hook.events)
    assert hook.content_types == {"application/cloudevents+json"}
    metrics = httpx.get(f"{gateway.scoring_url}/metrics").text
    assert f'scoregate_rollout_state{{endpoint="{E}",state="succeeded"}} 1.0' in metrics
    assert (f'scoregate_rollout_verdicts_total{{deployment="green-good",endpoint="{E}",'
            'verdict="passed"}') in metrics


def test_a_gateway_killed_mid_rollout_resumes_at_its_step(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config", ["blue", "green-good"])
    home = tmp_path / "home"
    gateway = start_serve(processes, home, str(folder))
    key = gateway.key(E)
    wait_until(lambda: gateway.score(E, b"{}", key, "green-good").status_code == 200,
               timeout=90, what="green-good to be ready")
    start(gateway, "--to", "green-good", "--steps", "40", "--bake", "4s", "--min-requests",
          "10")
    before = rollout(gateway)
    step_traffic = [s["traffic"] for s in before["steps"]]
    assert traffic(gateway) == {"blue": 60, "green-good": 40}
    gateway.started.proc.send_signal(signal.SIGKILL)
    gateway.started.proc.wait(30)

    restarted = start_serve(processes, home)
    after = rollout(restarted)
    assert after["id"] == before["id"]
    assert after["state"] in ("running", "succeeded")
    if after["state"] == "running":
        assert after["reason"] == "resumed after a restart"
        assert after["current"] == 0 and after["steps"][0]["started_at"] > \
            before["steps"][0]["started_at"]  # a fresh bake window
    shown = {k: v for k, v in restarted.cli_json("online-endpoint", "show", "-n", E)
             ["traffic"].items()}
    assert shown in step_traffic + [{"blue": 0, "green-good": 100}]  # never a half-state
    with Load(restarted, restarted.key(E)) as load:
        wait_until(lambda: rollout(restarted)["state"] != "running", timeout=60,
                   what="the resumed rollout to end")
    assert rollout(restarted)["state"] == "succeeded", rollout(restarted)["reason"]
    assert traffic(restarted) == {"green-good": 100}
    assert load.failures == []

"""Managed instances killed or frozen under load: SIGKILL costs at most the requests in flight
to that instance and it comes back; SIGSTOP gives 408s until readiness takes it out of
rotation, within its probe period, and SIGCONT puts it back."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.load import Background
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E, D = "managed", "blue"
CONCURRENCY = 4
TIMEOUT_MS = 1000
PERIOD_S, PROBE_TIMEOUT_S = 1, 1
BATCH = CONCURRENCY * 5  # Background sends its requests in batches of this many


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("managed")
    folder = tmp / "config"
    folder.mkdir()
    code = tmp / "code"
    code.mkdir()
    (code / "score.py").write_text("import logging\n\ndef init():\n    pass\n\n"
                                   "def run(raw_data):\n    logging.info('request received')\n"
                                   "    return [1]\n")
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{{D}: 100}}\n")
    (folder / "blue.yml").write_text(
        f"name: {D}\nendpoint_name: {E}\n"
        f"code_configuration: {{code: {code}, scoring_script: score.py}}\ninstance_count: 2\n"
        f"request_settings: {{request_timeout_ms: {TIMEOUT_MS}, "
        "max_concurrent_requests_per_instance: 8}\n"
        f"readiness_probe: {{initial_delay: 0, period: {PERIOD_S}, timeout: {PROBE_TIMEOUT_S}, "
        "failure_threshold: 1}\n"
        "liveness_probe: {initial_delay: 0, period: 1, timeout: 1, failure_threshold: 120}\n")
    with ProcessGroup(tmp / "process-logs") as group:
        yield start_serve(group, tmp / "home", str(folder))


def instances(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
    shown = gateway.cli_json("online-deployment", "show", "--name", D, "--endpoint-name", E)
    return {i["id"]: i for i in shown["instances"]}


def served_by(gateway: RunningGateway, instance: str) -> int:
    logs = gateway.cli("online-deployment", "get-logs", "--name", D, "--endpoint-name", E,
                       "--lines", "100000").stdout
    return sum(1 for line in logs.splitlines() if line.startswith(f"[{instance}]")
               and "request received" in line)


def all_ready(gateway: RunningGateway) -> bool:
    return all(i["state"] == "ready" for i in instances(gateway).values())


def victim_under_load(gateway: RunningGateway, instance: str) -> tuple[dict[str, Any], Background]:
    """Once both instances are ready: `instance` as it is now, and load that runs until stopped."""
    wait_until(lambda: all_ready(gateway), timeout=60, what="both instances ready")
    headers = {"Authorization": f"Bearer {gateway.key(E)}"}
    url = f"{gateway.scoring_url}/endpoints/{E}/score"
    return instances(gateway)[instance], Background(url, headers, CONCURRENCY).start()


def more_answers(running: Background, batches: int, what: str) -> int:
    """Wait until `batches` more of the load's batches (each CONCURRENCY × 5 requests, all
    answered) have ended; the answers counted then."""
    target = len(running.results) + batches * BATCH
    wait_until(lambda: len(running.results) >= target, timeout=60, what=what)
    return len(running.results)


def test_sigkill_under_load_costs_at_most_the_requests_in_flight(gateway: RunningGateway) -> None:
    victim, running = victim_under_load(gateway, f"{D}-1")
    try:
        more_answers(running, 2, "answers before the kill")
        os.kill(victim["pid"], signal.SIGKILL)
        wait_until(lambda: instances(gateway)[victim["id"]]["restarts"] > victim["restarts"]
                   and all_ready(gateway), timeout=60, what="the killed instance to come back")
        more_answers(running, 2, "answers after the restart")
    finally:
        results = running.stop()
    statuses = Counter(r.status for r in results)
    assert set(statuses) <= {200, 502}, statuses
    assert statuses[502] <= CONCURRENCY, statuses  # only requests that had reached it
    assert instances(gateway)[victim["id"]]["pid"] != victim["pid"]


def test_sigstop_takes_the_instance_out_of_rotation_and_sigcont_puts_it_back(
    gateway: RunningGateway
) -> None:
    victim, running = victim_under_load(gateway, f"{D}-0")
    try:
        more_answers(running, 1, "answers before the freeze")
        os.kill(victim["pid"], signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_until(lambda: instances(gateway)[victim["id"]]["state"] != "ready", timeout=30,
                   interval=0.1, what="readiness to notice the frozen instance")
        noticed_s = time.monotonic() - stopped_at
        out_at = len(running.results)
        # The batch under way may hold requests sent to it (they end in 408), and so may the
        # next, sent while the new routes were being published; the ones after may not.
        settled_at = more_answers(running, 2, "the requests sent to the frozen one to end")
        more_answers(running, 2, "answers once it is out of rotation")
        after_out = running.results[settled_at:]
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    try:
        wait_until(lambda: instances(gateway)[victim["id"]]["state"] == "ready", timeout=30,
                   what="the thawed instance to be ready again")
        before = served_by(gateway, victim["id"])
        wait_until(lambda: served_by(gateway, victim["id"]) > before + 10, timeout=30,
                   what="the thawed instance to get traffic again")
    finally:
        results = running.stop()
    statuses = Counter(r.status for r in results)
    assert set(statuses) <= {200, 408}, statuses
    assert statuses[408] <= CONCURRENCY * 2, statuses
    assert after_out and {r.status for r in after_out} == {200}
    assert out_at > 0
    # Out of rotation within its probe period (+ the probe's own timeout, and CLI polling).
    assert noticed_s < 3 * (PERIOD_S + PROBE_TIMEOUT_S), noticed_s

"""Crash loops (issue 10): a script that crashes now and then keeps its capacity; a true crash
loop still backs off.

`flaky`: each process exits (os._exit) on its 10th call; 2 instances, 300 requests, 4 at a
time. A crash costs the requests in flight on that instance, nothing more: the other instance
stays in rotation, and the crashed one is started again at once. `doomed`: exits at start,
before it is ever ready: the starts back off.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.load import fire, numbered
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "crashy"
CONCURRENCY = 4
REQUESTS = 300
FLAKY = """\
import os

calls = 0


def init():
    pass


def run(raw_data):
    global calls
    calls += 1
    if calls % 10 == 0:
        os._exit(1)
    return [calls]
"""
DOOMED = "import os\n\nos._exit(1)\n\ndef init():\n    pass\n\ndef run(raw_data):\n    return 1\n"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """`flaky` from the YAML `serve` starts on; `doomed` created at once after, without
    waiting: its create runs out its readiness budget (about 20 s with this slack) while the
    flaky test runs, instead of holding up `serve`'s start (YAML deployments are decided before it
    announces itself)."""
    tmp = tmp_path_factory.mktemp("crashes")
    folder = tmp / "config"
    folder.mkdir()
    for name, script, count in (("flaky", FLAKY, 2), ("doomed", DOOMED, 1)):
        code = tmp / name
        code.mkdir()
        (code / "score.py").write_text(script)
        (folder if name == "flaky" else tmp).joinpath(f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {E}\n"
            f"code_configuration: {{code: {code}, scoring_script: score.py}}\n"
            f"instance_count: {count}\n"
            "request_settings: {request_timeout_ms: 10000, "
            "max_concurrent_requests_per_instance: 4}\n"
            "readiness_probe: {initial_delay: 0, period: 1, timeout: 1, failure_threshold: 1}\n")
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{flaky: 100}}\n")
    with ProcessGroup(tmp / "process-logs") as group:
        # a 15 s startup slack (default 60 s) bounds how long doomed's create takes to fail
        gateway = start_serve(group, tmp / "home", str(folder),
                              extra=("--startup-slack-s", "15"))
        gateway.cli("online-deployment", "create", "-f", str(tmp / "doomed.yml"), "--no-wait")
        yield gateway


def instances(gateway: RunningGateway, name: str) -> list[dict[str, Any]]:
    shown = gateway.cli_json("online-deployment", "show", "--name", name, "--endpoint-name", E)
    return list(shown["instances"])


def test_a_script_crashing_every_10th_call_keeps_serving(gateway: RunningGateway) -> None:
    wait_until(lambda: all(i["state"] == "ready" for i in instances(gateway, "flaky")),
               timeout=90, what="both flaky instances ready")
    before = sum(i["restarts"] for i in instances(gateway, "flaky"))
    headers = {"Authorization": f"Bearer {gateway.key(E)}", "Content-Type": "application/json",
               "azureml-model-deployment": "flaky"}
    results = fire(f"{gateway.scoring_url}/endpoints/{E}/score", numbered(REQUESTS), headers,
                   CONCURRENCY)
    statuses = Counter(r.status for r in results)
    crashes = sum(i["restarts"] for i in instances(gateway, "flaky")) - before
    # Each process answers 9 calls and dies on its 10th: ~30 crashes for 300 requests.
    assert crashes >= REQUESTS // 10 // 2, (crashes, statuses)
    failed = REQUESTS - statuses[200]
    # What a crash may cost: the requests in flight on that instance at that moment.
    assert failed <= crashes * CONCURRENCY, (crashes, statuses)
    assert statuses[503] <= crashes, (crashes, statuses)


def test_an_instance_that_never_gets_ready_fails_its_create_and_runs_nothing(
        gateway: RunningGateway) -> None:
    """A start that never becomes ready is not retried in a hot loop: since deployments report
    their provisioning state, its create ends `Failed` and nothing of it runs (the supervisor's
    own backoff between such starts is tested in tests/control_plane/instances)."""
    def shown() -> dict[str, Any]:
        out = gateway.cli("online-deployment", "show", "--name", "doomed", "--endpoint-name", E,
                          "-o", "json").stdout
        return dict(json.loads(out))

    wait_until(lambda: shown()["provisioning_state"] == "Failed", timeout=240,
               what="doomed's create to end Failed")
    assert instances(gateway, "doomed") == []

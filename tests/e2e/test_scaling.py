"""Scaling a running deployment up and down under load fails no request: a removed instance
leaves rotation first and is stopped only once nothing is in flight to it."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from tests.e2e.test_walkthrough import Load
from tests.support.gateway import start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "scale-endpoint"


def test_instance_count_changes_under_load_fail_no_request(
    processes: ProcessGroup, tmp_path: Path
) -> None:
    folder = tmp_path / "config"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(
        "import os, time\n\ndef init():\n    pass\n\n"
        "def run(raw_data):\n    time.sleep(0.005)\n    return {'pid': os.getpid()}\n")
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    (folder / "blue.yml").write_text(
        f"name: blue\nendpoint_name: {E}\ninstance_count: 2\n"
        "code_configuration: {code: code, scoring_script: score.py}\n"
        "request_settings: {max_concurrent_requests_per_instance: 4}\n"
        "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 3}\n")
    gateway = start_serve(processes, tmp_path / "home", str(folder))
    key = gateway.key(E)
    wait_until(lambda: gateway.score(E, b"{}", key).status_code == 200, timeout=60,
               what="blue to answer")
    load = Load(gateway, key, b"{}", endpoint=E)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()

    def ready(count: int) -> bool:
        shown = gateway.cli_json("online-deployment", "show", "--name", "blue",
                                 "--endpoint-name", E)
        return [i["state"] for i in shown["instances"]].count("ready") == count and \
            len(shown["instances"]) == count

    try:
        for count in (1, 3, 1, 2):
            gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", E,
                        "--set", f"instance_count={count}")
            wait_until(partial(ready, count), timeout=90, what=f"{count} ready instances")
            wait_until(partial(load.sent_at_least, load.sent + 100), timeout=60,
                       what="requests after scaling")
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.sent >= 400
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"

"""Azure ML's safe-rollout walkthrough, typed as `scoregate` commands against a real server,
with a bounded load generator that must not see a single failure from step 3 onward."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from tests.support.gateway import RunningGateway, start_serve, trained_example
from tests.support.processes import ProcessGroup, wait_until

E = "walk-endpoint"


@dataclass
class Load:
    """Requests without a deployment header, one after another, until stopped (or 10 min)."""

    gateway: RunningGateway
    key: str
    body: bytes
    endpoint: str = E
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        deadline = time.monotonic() + 600
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline and self.sent < 200_000:
                with self.lock:
                    self.sent += 1
                try:
                    response = self.gateway.score(self.endpoint, self.body, self.key,
                                                  client=client)
                except httpx.HTTPError as exc:
                    self.failures.append(f"request {self.sent}: {exc!r}")
                    continue
                if response.status_code != 200:
                    self.failures.append(
                        f"request {self.sent}: {response.status_code} {response.text}")
                else:
                    self.seen[response.headers["azureml-model-deployment"]] += 1
                time.sleep(0.002)

    def sent_at_least(self, count: int) -> bool:
        return self.sent >= count


def _green_requests(gateway: RunningGateway) -> int:
    logs = gateway.cli("online-deployment", "get-logs", "--name", "green", "--endpoint-name", E,
                       "--lines", "100000").stdout
    return logs.count("request received")


def test_safe_rollout_walkthrough_under_load(processes: ProcessGroup, tmp_path: Path) -> None:
    example = trained_example(tmp_path / "example")
    gateway = start_serve(processes, tmp_path / "home")  # no files: starts from stored state
    endpoint_yml = tmp_path / "endpoint.yml"
    endpoint_yml.write_text("$schema: https://azuremlschemas.azureedge.net/latest/"
                            "managedOnlineEndpoint.schema.json\nname: ignored-name\n"
                            "auth_mode: key\n")
    body = (example / "sample-request.json").read_text()
    request_file = tmp_path / "sample-request.json"
    request_file.write_text(body)

    # 1. create the endpoint (--name overrides the name in the file)
    gateway.cli("online-endpoint", "create", "--name", E, "-f", str(endpoint_yml))
    # 2. create blue with all traffic
    gateway.cli("online-deployment", "create", "--name", "blue", "--endpoint", E,
                "-f", str(example / "blue-deployment.yml"), "--all-traffic")
    # 3. invoke, then keep a load running for the rest of the walkthrough
    answer = gateway.cli("online-endpoint", "invoke", "--name", E,
                         "--request-file", str(request_file))
    assert len(json.loads(answer.stdout)) == len(json.loads(body)["data"])
    load = Load(gateway, gateway.key(E), body.encode())
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        # 4. scale blue to 2 instances
        gateway.cli("online-deployment", "update", "--name", "blue", "--endpoint-name", E,
                    "--set", "instance_count=2")
        blue = gateway.cli_json("online-deployment", "show", "--name", "blue", "--endpoint-name", E)
        assert len(blue["instances"]) == 2
        # 5. create green
        gateway.cli("online-deployment", "create", "--name", "green", "--endpoint", E,
                    "-f", str(example / "green-deployment.yml"))
        # 6. green is listed at 0
        traffic = gateway.cli_json("online-endpoint", "show", "-n", E, "--query", "traffic")
        assert traffic == {"blue": 100, "green": 0}
        # 7. invoke green directly
        direct = gateway.cli("online-endpoint", "invoke", "--name", E, "--deployment-name", "green",
                             "--request-file", str(request_file))
        assert json.loads(direct.stdout) != json.loads(answer.stdout)
        # 8. mirror 10% to green and see the copies in green's logs
        before = _green_requests(gateway)
        gateway.cli("online-endpoint", "update", "--name", E, "--mirror-traffic", "green=10")
        shown = gateway.cli_json("online-endpoint", "show", "-n", E)
        assert shown["mirror_traffic"] == {"green": 10}
        wait_until(lambda: _green_requests(gateway) - before >= 5, timeout=60,
                   what="mirrored copies in green's log")
        # 9. mirror off
        gateway.cli("online-endpoint", "update", "--name", E, "--mirror-traffic", "green=0")
        # 10. 90/10, then 0/100
        gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=90 green=10")
        seen_before = Counter(load.seen)
        wait_until(lambda: load.seen["green"] - seen_before["green"] >= 20, timeout=60,
                   what="green to get live traffic")
        gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=0 green=100")
        assert gateway.cli_json("online-endpoint", "show", "-n", E, "--query", "traffic") == \
            {"blue": 0, "green": 100}
        seen_before = Counter(load.seen)
        wait_until(lambda: load.seen["green"] - seen_before["green"] >= 50, timeout=60,
                   what="requests after the switch")
        # at most the ones in flight at the swap
        assert load.seen["blue"] - seen_before["blue"] <= 2
        # 11. delete blue
        gateway.cli("online-deployment", "delete", "--name", "blue", "--endpoint", E, "--yes")
        seen_before = Counter(load.seen)
        wait_until(lambda: load.seen["green"] - seen_before["green"] >= 20, timeout=60,
                   what="requests after deleting blue")
    finally:
        load.stop.set()
        thread.join(60)
    assert load.sent > 100
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    # 12. delete the endpoint
    gateway.cli("online-endpoint", "delete", "--name", E, "--yes")
    listed = gateway.cli_json("online-endpoint", "list")
    assert all(item["name"] != E for item in listed)
    gone = httpx.post(f"{gateway.scoring_url}/endpoints/{E}/score", content=body)
    assert gone.status_code in (401, 404)


def test_user_errors_are_one_line_without_traceback(processes: ProcessGroup,
                                                    tmp_path: Path) -> None:
    gateway = start_serve(processes, tmp_path / "home")
    missing = gateway.cli("online-endpoint", "show", "-n", "nope-endpoint", check=False)
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert "nope-endpoint" in missing.stderr
    bad = gateway.cli("online-endpoint", "update", "--name", "nope-endpoint", "--traffic",
                      "blue=ninety", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def _managed_answers(gateway: RunningGateway, key: str) -> bool:
    return gateway.score("crash-endpoint", b"{}", key, "managed").status_code == 200


def test_kill_9_mid_update_restarts_into_the_last_acknowledged_state(
    processes: ProcessGroup, tmp_path: Path
) -> None:
    import random
    import signal

    home = tmp_path / "home"
    folder = tmp_path / "config"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(
        "def init():\n    pass\n\ndef run(raw_data):\n    return {'ok': True}\n")
    (folder / "endpoint.yml").write_text("name: crash-endpoint\nauth_mode: key\n"
                                         "traffic: {alpha: 100}\n")
    for name in ("alpha", "beta"):
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: crash-endpoint\nurl: http://127.0.0.1:9/score\n")
    (folder / "m.yml").write_text(
        "name: managed\nendpoint_name: crash-endpoint\n"
        "code_configuration: {code: code, scoring_script: score.py}\n")
    rng = random.Random(7)
    acknowledged: dict[str, int] | None = None
    pending: dict[str, int] | None = None
    for round_number in range(6):
        gateway = start_serve(processes, home, *([str(folder)] if round_number == 0 else []))
        shown = gateway.cli_json("online-endpoint", "show", "-n", "crash-endpoint")
        live = {k: v for k, v in shown["traffic"].items() if k != "managed"}
        if acknowledged is not None:
            assert live in (acknowledged, pending), (live, acknowledged, pending)
        key = gateway.key("crash-endpoint")
        wait_until(partial(_managed_answers, gateway, key), timeout=60,
                   what="the managed instance to come back")
        acknowledged = pending = live
        stop = threading.Event()

        def updates(gateway: RunningGateway, stop: threading.Event) -> None:
            nonlocal acknowledged, pending
            while not stop.is_set():
                a = rng.choice(range(0, 101, 10))
                pending = {"alpha": a, "beta": 100 - a}
                result = gateway.cli("online-endpoint", "update", "--name", "crash-endpoint",
                                     "--traffic", f"alpha={a} beta={100 - a}", check=False)
                if result.returncode != 0:
                    return
                acknowledged = pending

        thread = threading.Thread(target=updates, args=(gateway, stop), daemon=True)
        thread.start()
        time.sleep(rng.uniform(0.5, 3.0))
        gateway.started.proc.send_signal(signal.SIGKILL)
        gateway.started.proc.wait(30)
        stop.set()
        thread.join(60)
    final = start_serve(processes, home)
    shown = final.cli_json("online-endpoint", "show", "-n", "crash-endpoint")["traffic"]
    assert {k: v for k, v in shown.items() if k != "managed"} in (acknowledged, pending)

"""Deployment lifecycle through the real `scoregate serve` and CLI (issue 10 bug 5, issue 11 §3).

A slow `init()` is a gate: the scoring script waits until a file exists, so each test decides
when the slow deployment becomes ready and asserts an order of events (never a duration): what
must not wait for it finishes while it is still `Creating`. A broken deployment is one whose
`init()` raises. Provisioning states are read with `online-deployment show`, as a user would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_walkthrough import Load
from tests.support.gateway import RunningGateway, start_serve, start_upstream
from tests.support.processes import REPO_ROOT, ProcessGroup, free_port, wait_until

SCORE = """\
import os, time

def init():
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init refused: " + os.environ["FAIL_INIT"])
    gate = os.environ.get("GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.05)

def run(raw_data):
    return {"version": os.environ.get("VERSION", "?")}
"""
# Readiness is polled quickly while an instance starts; 60 failures leave a gate time to open.
PROBES = "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 60}\n"


def write_config(folder: Path) -> Path:
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / "score.py").write_text(SCORE)
    return folder


def deployment_yaml(folder: Path, name: str, endpoint: str, env: dict[str, str],
                    instance_count: int = 1) -> Path:
    path = folder / f"{endpoint}-{name}.yml"
    path.write_text(f"name: {name}\nendpoint_name: {endpoint}\ninstance_count: {instance_count}\n"
                    "code_configuration: {code: code, scoring_script: score.py}\n"
                    f"environment_variables: {json.dumps(env)}\n{PROBES}")
    return path


def external_yaml(folder: Path, name: str, endpoint: str, upstream: str) -> Path:
    path = folder / f"{endpoint}-{name}.yml"
    path.write_text(f"name: {name}\nendpoint_name: {endpoint}\nurls: ['{upstream}/score']\n")
    return path


def show(gateway: RunningGateway, endpoint: str, name: str) -> dict[str, Any]:
    shown: dict[str, Any] = gateway.cli_json("online-deployment", "show", "-n", name,
                                             "-e", endpoint)
    return shown


def state(gateway: RunningGateway, endpoint: str, name: str) -> str:
    return str(show(gateway, endpoint, name)["provisioning_state"])


def state_once_created(gateway: RunningGateway, endpoint: str, name: str) -> str | None:
    """None until a create running elsewhere has stored the deployment."""
    shown = gateway.cli("online-deployment", "show", "-n", name, "-e", endpoint, check=False)
    return str(json.loads(shown.stdout)["provisioning_state"]) if shown.returncode == 0 else None


def create_endpoint(gateway: RunningGateway, name: str) -> None:
    gateway.cli("online-endpoint", "create", "-n", name)


def background_cli(gateway: RunningGateway, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "control_plane", *args], env=gateway.env(),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_slow_init_holds_up_no_change_to_another_endpoint(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config")
    gate = tmp_path / "gate"
    gateway = start_serve(processes, tmp_path / "home")
    upstream = start_upstream(processes, tmp_path)
    create_endpoint(gateway, "fast-ep")
    create_endpoint(gateway, "slow-ep")
    gateway.cli("online-deployment", "create", "-f",
                str(external_yaml(folder, "ext", "fast-ep", upstream)))
    slow = deployment_yaml(folder, "slow", "slow-ep", {"GATE": str(gate)})
    creating = background_cli(gateway, "online-deployment", "create", "-f", str(slow),
                              "--all-traffic")
    try:
        wait_until(lambda: state_once_created(gateway, "slow-ep", "slow") == "Creating",
                   timeout=60,
                   what="the slow deployment to be Creating")
        gateway.cli("online-endpoint", "update", "-n", "fast-ep", "--traffic", "ext=100")
        key = gateway.key("fast-ep")
        assert gateway.score("fast-ep", b"{}", key).status_code == 200
        # the traffic change and the request were answered while the slow one still starts
        assert state(gateway, "slow-ep", "slow") == "Creating"
        assert creating.poll() is None, "create returned before its instance was ready"
        assert gateway.cli_json("online-endpoint", "show", "-n", "slow-ep")["traffic"] == {
            "slow": 0}
        gate.touch()
        out, err = creating.communicate(timeout=120)
    finally:
        if creating.poll() is None:
            creating.kill()
            creating.communicate()
    assert creating.returncode == 0, err
    assert json.loads(out)["provisioning_state"] == "Succeeded"
    assert "Creating slow" in err  # progress, on stderr
    assert gateway.cli_json("online-endpoint", "show", "-n", "slow-ep")["traffic"] == {
        "slow": 100}
    assert gateway.score("slow-ep", b"{}", gateway.key("slow-ep")).status_code == 200


def test_a_restart_serves_every_ready_deployment_before_a_slow_one_is_up(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config")
    gate = tmp_path / "gate"
    gate.touch()
    home = tmp_path / "home"
    gateway = start_serve(processes, home)
    upstream = start_upstream(processes, tmp_path)
    create_endpoint(gateway, "fast-ep")
    create_endpoint(gateway, "slow-ep")
    gateway.cli("online-deployment", "create", "--all-traffic", "-f",
                str(external_yaml(folder, "ext", "fast-ep", upstream)))
    gateway.cli("online-deployment", "create", "--all-traffic", "-f",
                str(deployment_yaml(folder, "slow", "slow-ep", {"GATE": str(gate)})))
    processes.stop(gateway.started)
    gate.unlink()  # from now on, the slow deployment's init() waits

    gateway = start_serve(processes, home)
    fast_key, slow_key = gateway.key("fast-ep"), gateway.key("slow-ep")
    wait_until(lambda: gateway.score("fast-ep", b"{}", fast_key).status_code == 200,
               timeout=60, what="the external deployment to serve")
    instances = show(gateway, "slow-ep", "slow")["instances"]
    assert [i["state"] for i in instances] != ["ready"], instances  # still starting
    assert gateway.score("slow-ep", b"{}", slow_key).status_code == 503
    gate.touch()
    wait_until(lambda: gateway.score("slow-ep", b"{}", slow_key).status_code == 200,
               timeout=90, what="the slow deployment to serve once its init() returns")
    assert state(gateway, "slow-ep", "slow") == "Succeeded"


def test_create_whose_init_raises_fails_and_takes_no_traffic(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config")
    gateway = start_serve(processes, tmp_path / "home")
    create_endpoint(gateway, "life-ep")
    gateway.cli("online-deployment", "create", "--all-traffic", "-f",
                str(deployment_yaml(folder, "blue", "life-ep", {"VERSION": "blue"})))
    key = gateway.key("life-ep")
    assert gateway.score("life-ep", b"{}", key).json() == {"version": "blue"}

    broken = deployment_yaml(folder, "green", "life-ep", {"FAIL_INIT": "marker-7f3a"})
    result = gateway.cli("online-deployment", "create", "--all-traffic", "-f", str(broken),
                         check=False)
    assert result.returncode == 1, result
    assert "Failed" in result.stderr and "--all-traffic was not applied" in result.stderr
    assert "init refused: marker-7f3a" in result.stderr  # the instance log's last lines
    assert "Traceback (most recent call last)" not in result.stderr.split("\n")[0]
    shown = show(gateway, "life-ep", "green")
    assert shown["provisioning_state"] == "Failed"
    assert "marker-7f3a" in shown["provisioning_message"]
    endpoint = gateway.cli_json("online-endpoint", "show", "-n", "life-ep")
    assert endpoint["traffic"] == {"blue": 100, "green": 0}
    assert gateway.score("life-ep", b"{}", key).json() == {"version": "blue"}
    refused = gateway.cli("online-endpoint", "update", "-n", "life-ep", "--traffic",
                          "green=100", check=False)
    assert refused.returncode == 1 and "traffic-not-provisioned" in refused.stderr
    wait_until(lambda: show(gateway, "life-ep", "green")["instances"] == [], timeout=60,
               what="the failed deployment's instances to stop")


def test_update_to_a_broken_version_keeps_the_old_one_serving(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config")
    gateway = start_serve(processes, tmp_path / "home")
    create_endpoint(gateway, "roll-ep")
    gateway.cli("online-deployment", "create", "--all-traffic", "-f",
                str(deployment_yaml(folder, "blue", "roll-ep", {"VERSION": "v1"},
                                    instance_count=2)))
    load = Load(gateway, gateway.key("roll-ep"), b"{}", endpoint="roll-ep")
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: load.sent_at_least(20), timeout=60, what="load before the update")
        result = gateway.cli("online-deployment", "update", "-n", "blue", "-e", "roll-ep",
                             "--set", "environment_variables.FAIL_INIT=marker-v2", check=False)
        assert result.returncode == 1, result
        assert "marker-v2" in result.stderr
        after = load.sent
        wait_until(lambda: load.sent_at_least(after + 50), timeout=60,
                   what="requests after the failed update")
    finally:
        load.stop.set()
        thread.join(60)
    shown = show(gateway, "roll-ep", "blue")
    assert shown["provisioning_state"] == "Failed" and "marker-v2" in shown["provisioning_message"]
    assert shown["environment_variables"] == {"VERSION": "v1"}  # the working version is back
    assert load.failures == [], f"{len(load.failures)} of {load.sent}: {load.failures[:5]}"
    assert set(load.seen) == {"blue"}
    wait_until(lambda: [i["state"] for i in show(gateway, "roll-ep", "blue")["instances"]]
               == ["ready", "ready"], timeout=60, what="only the old instances to remain")


def test_no_wait_answers_creating_and_a_kill_9_leaves_nothing_stuck(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config")
    gate = tmp_path / "gate"
    home = tmp_path / "home"
    gateway = start_serve(processes, home)
    create_endpoint(gateway, "wait-ep")
    slow = deployment_yaml(folder, "slow", "wait-ep", {"GATE": str(gate)})
    answer = json.loads(gateway.cli("online-deployment", "create", "-f", str(slow),
                                    "--no-wait", "--all-traffic").stdout)
    assert answer["provisioning_state"] == "Creating"
    assert state(gateway, "wait-ep", "slow") == "Creating"

    processes.stop(gateway.started, signal.SIGKILL)  # dies while the deployment is Creating
    gateway = start_serve(processes, home)
    assert state(gateway, "wait-ep", "slow") == "Creating"  # decided again, not forgotten
    gate.touch()
    wait_until(lambda: state(gateway, "wait-ep", "slow") != "Creating", timeout=120,
               what="the deployment to leave Creating after the restart")
    assert state(gateway, "wait-ep", "slow") == "Succeeded"
    endpoint = gateway.cli_json("online-endpoint", "show", "-n", "wait-ep")
    assert endpoint["traffic"] == {"slow": 100}  # the pending --all-traffic was kept
    assert gateway.score("wait-ep", b"{}", gateway.key("wait-ep")).status_code == 200


def test_serve_with_yaml_serves_at_once_and_stops_while_a_slow_one_starts(
        processes: ProcessGroup, tmp_path: Path) -> None:
    """With YAML given, `serve` announces itself once the YAML's deployments are decided, but
    it serves what is ready from the start, and a stop signal is heard while it waits."""
    folder = write_config(tmp_path / "config")
    upstream = start_upstream(processes, tmp_path)
    (folder / "fast.yml").write_text("name: fast-ep\nauth_mode: key\ntraffic: {ext: 100}\n")
    (folder / "slow.yml").write_text("name: slow-ep\nauth_mode: key\n")
    external_yaml(folder, "ext", "fast-ep", upstream)
    deployment_yaml(folder, "slow", "slow-ep", {"GATE": str(tmp_path / "gate")})
    port, admin_port = free_port(), free_port()
    home = tmp_path / "home"
    serve = processes.python("-m", "control_plane", "serve", str(folder), "--port", str(port),
                             "--admin-port", str(admin_port), "--log-format", "json",
                             env={"SCOREGATE_HOME": str(home)}, name="serve-yaml")
    gateway = RunningGateway(home, serve)
    admin = ("--url", f"http://127.0.0.1:{admin_port}")

    def key() -> str | None:
        shown = gateway.cli("online-endpoint", "get-credentials", "-n", "fast-ep", *admin,
                            check=False)
        return str(json.loads(shown.stdout)["primaryKey"]) if shown.returncode == 0 else None

    wait_until(lambda: key() is not None, timeout=60, what="the admin listener")
    url = f"http://127.0.0.1:{port}/endpoints/fast-ep/score"
    headers = {"Authorization": f"Bearer {key()}", "Content-Type": "application/json"}
    assert httpx.post(url, content=b"{}", headers=headers, timeout=30).status_code == 200
    shown = gateway.cli_json("online-deployment", "show", "-n", "slow", "-e", "slow-ep", *admin)
    assert shown["provisioning_state"] == "Creating"
    assert not (home / "server.json").exists()  # announced only once the YAML is decided
    assert processes.stop(serve) == 0  # SIGTERM heard while waiting: a clean stop
    assert "stopped" in serve.log()

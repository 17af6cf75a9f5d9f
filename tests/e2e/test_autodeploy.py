"""Auto-deploy end to end (issue 14 §2), typed as `scoregate` commands against a real server.

v1 is registered and deployed as `blue` with all traffic; a policy with an accuracy gate
(labelled CSV, `accuracy >= 0.9`), a mirror phase judged by agreement and a short canary is
set; then, under a steady bounded load: a good v2 is promoted with no failed client request
(blue deleted), a bad v3 stops at the gate with its measured accuracy (0.55) in the verdict and
live traffic untouched (kept at 0%), and a v4 that passes the gate but fails live requests is
rolled back by the canary's guardrails (and deleted, as that policy says). Finally a v5 whose
server is killed (-9) during its rollout is carried on after the restart (v2 kept at 0%).

The models are tiny folders holding one word (good, bad, flaky) that one scoring script reads,
so every instance starts in well under a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import RunningGateway, start_serve
from tests.support.load import Load as ScoringLoad
from tests.support.processes import ProcessGroup, wait_until

E = "ad-endpoint"
MODEL = "ad-model"
SCRIPT = """\
import glob
import itertools
import json
import os

MODE = None
COUNT = itertools.count()


def init():
    global MODE
    found = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "mode.txt"),
                      recursive=True)
    MODE = open(found[0]).read().strip()


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    if MODE == "flaky" and len(rows) == 1 and next(COUNT) % 2:
        raise RuntimeError("fails under live load")
    if MODE == "bad":
        return [0 for _ in rows]
    return [1 if row[0] > 0 else 0 for row in rows]
"""
DEPLOYMENT = f"""\
name: blue
endpoint_name: {E}
model: azureml:{MODEL}:1
code_configuration: {{code: code, scoring_script: score.py}}
environment_variables: {{WORKER_COUNT: '4'}}
request_settings: {{max_concurrent_requests_per_instance: 4}}
readiness_probe: {{initial_delay: 0, period: 1}}
"""


def Load(gateway: RunningGateway, key: str) -> ScoringLoad:  # noqa: N802 (reads as the class)
    """Steady and bounded: three threads, a few hundred requests a second at most."""
    return ScoringLoad(gateway, key, E, threads=3, pause_s=0.005, max_s=240)


def model_folder(root: Path, version: int, mode: str) -> Path:
    folder = root / f"model-v{version}"
    folder.mkdir(parents=True)
    (folder / "mode.txt").write_text(mode)
    return folder


def register(gateway: RunningGateway, root: Path, version: int, mode: str) -> float:
    """`scoregate model create` of the version; when the command was started."""
    folder = model_folder(root, version, mode)
    started = time.monotonic()
    gateway.cli("model", "create", "--name", MODEL, "--path", str(folder))
    return started


def run_of(gateway: RunningGateway, version: int) -> dict[str, Any] | None:
    shown = gateway.cli_json("online-endpoint", "auto-deploy", "show", "-n", E)
    return next((run for run in shown["runs"] if run["version"] == version), None)


def wait_run(gateway: RunningGateway, version: int, states: tuple[str, ...],
             timeout: float = 90) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def ended() -> bool:
        run = run_of(gateway, version)
        if run is not None and run["state"] in states:
            found.append(run)
            return True
        return False

    wait_until(ended, timeout=timeout, interval=0.3, what=f"the run of v{version} in {states}")
    return found[0]


def ready(gateway: RunningGateway, deployment: str) -> bool:
    shown = gateway.cli_json("online-deployment", "show", "-n", deployment, "-e", E)
    return bool(shown["instances"]) and all(i["state"] == "ready" for i in shown["instances"])


def traffic(gateway: RunningGateway) -> dict[str, int]:
    shown = gateway.cli_json("online-endpoint", "show", "-n", E)
    return {name: share for name, share in shown["traffic"].items() if share}


def events_of(gateway: RunningGateway, version: int) -> list[str]:
    listed = gateway.cli_json("event", "list")
    return [event["type"].rsplit(".", 1)[1] for event in listed
            if event["type"].startswith("io.scoregate.autodeploy.")
            and event["data"].get("modelVersion") == str(version)]


@pytest.fixture
def gateway(processes: ProcessGroup, tmp_path: Path) -> Iterator[RunningGateway]:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCRIPT)
    (tmp_path / "blue.yml").write_text(DEPLOYMENT)
    rows = ["x,target", *(f"{x},{1 if x > 0 else 0}" for x in range(-10, 10))]
    (tmp_path / "gate.csv").write_text("\n".join(rows) + "\n")
    running = start_serve(processes, tmp_path / "home")
    register(running, tmp_path, 1, "good")
    running.cli("online-endpoint", "create", "-n", E)
    running.cli("online-deployment", "create", "-f", str(tmp_path / "blue.yml"),
                "--all-traffic")
    yield running


def test_auto_deploy_gate_and_guardrails(gateway: RunningGateway, processes: ProcessGroup,
                                         tmp_path: Path) -> None:
    refused = gateway.cli("online-endpoint", "auto-deploy", "set", "-n", E, "--model", MODEL,
                          "--gate-data", str(tmp_path / "gate.csv"), "--label-column", "nope",
                          "--min", "0.9", check=False)
    assert refused.returncode != 0 and "label column 'nope' is not in" in refused.stderr
    token = (gateway.home / "admin_token").read_text().strip()
    bad = httpx.put(f"{gateway.admin_url}/v1/endpoints/{E}/auto-deploy", timeout=30,
                    json={"model": MODEL, "gate": "accuracy >= 0.9"},
                    headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 400 and "a gate needs labelled data" in bad.json()["message"]
    none_yet = gateway.cli("online-endpoint", "auto-deploy", "show", "-n", E, check=False)
    assert none_yet.returncode != 0 and "has no auto-deploy policy" in none_yet.stderr
    unknown = gateway.cli("online-endpoint", "auto-deploy", "set", "-n", E, "--model", MODEL,
                          "--from-deployment", "green", check=False)
    assert unknown.returncode != 0 and "green" in unknown.stderr, unknown.stderr
    policy_flags = ("online-endpoint", "auto-deploy", "set", "-n", E, "--model", MODEL,
                    "--gate-data", str(tmp_path / "gate.csv"), "--label-column", "target",
                    "--metric", "accuracy", "--min", "0.9", "--strategy", "canary",
                    "--canary-percent", "20", "--bake", "1.5s", "--min-requests", "10",
                    "--max-error-rate", "0.05")
    policy = gateway.cli_json(*policy_flags, "--mirror", "20", "--mirror-for", "1.5s",
                              "--min-agreement", "0.9")
    assert policy["enabled"] and policy["policy"]["gate"] == "accuracy >= 0.9"
    shown = gateway.cli_json("online-endpoint", "show", "-n", E)
    assert shown["auto_deploy"]["model"] == MODEL
    assert shown["auto_deploy"]["gate_data"]["row_count"] == 20
    key = gateway.key(E)

    with Load(gateway, key) as load:
        wait_until(lambda: load.seen["blue"] > 20, what="load on blue")

        # a good v2: created, gated, canaried, promoted; blue deleted; no failed request
        registered = register(gateway, tmp_path, 2, "good")
        good = wait_run(gateway, 2, ("succeeded", "failed", "rolled_back", "stopped_at_gate"))
        assert good["state"] == "succeeded", good["reason"]
        assert good["gate"]["passed"] and good["gate"]["candidate"] == 1.0
        rollout = gateway.cli_json("online-endpoint", "rollout", "show", "-n", E)
        assert rollout["id"] == good["rollout_id"]
        assert [(s["phase"], s["status"]) for s in rollout["steps"]] == [
            ("mirror", "passed"), ("traffic", "passed"), ("traffic", "passed")]
        wait_until(lambda: load.seen[f"{MODEL}-v2"] > 20, what="load on v2")
        assert load.failures == []
        assert traffic(gateway) == {f"{MODEL}-v2": 100}
        names = [d["name"] for d in gateway.cli_json("online-deployment", "list", "-e", E)]
        assert names == [f"{MODEL}-v2"]
        first_live_s = load.first_seen[f"{MODEL}-v2"] - registered
        stages = httpx.get(f"{gateway.scoring_url}/metrics", timeout=30).text
        assert (f'scoregate_autodeploy_stages_total{{endpoint="{E}",kind="promoted",'
                f'model="{MODEL}"}} 1.0') in stages  # the dashboard's annotation
        assert events_of(gateway, 2) == ["queued", "started", "deployment_created",
                                         "gate_passed", "rollout_started", "promoted",
                                         "retired", "succeeded"]

        # a bad v3: stopped at the gate with its accuracy; live traffic untouched
        register(gateway, tmp_path, 3, "bad")
        bad = wait_run(gateway, 3, ("succeeded", "failed", "rolled_back", "stopped_at_gate"))
        assert bad["state"] == "stopped_at_gate", bad
        assert bad["gate"]["candidate"] == 0.55 and not bad["gate"]["passed"]
        assert "accuracy 0.5500 on 20 rows misses accuracy >= 0.9" in bad["reason"]
        assert traffic(gateway) == {f"{MODEL}-v2": 100}
        assert load.failures == []
        assert events_of(gateway, 3)[-1] == "gate_failed"

        # a flaky v4: passes the gate, fails live requests, rolled back by the guardrails
        # (of the canary: this policy has no mirror phase, which would catch it unseen)
        gateway.cli_json(*policy_flags, "--on-failure", "delete")
        register(gateway, tmp_path, 4, "flaky")
        flaky = wait_run(gateway, 4, ("succeeded", "failed", "rolled_back", "stopped_at_gate"))
        assert flaky["state"] == "rolled_back", flaky
        assert flaky["gate"]["passed"] and "error-rate" in flaky["reason"]
        assert traffic(gateway) == {f"{MODEL}-v2": 100}
        failed_on = {failure.split(":")[0] for failure in load.failures}
        assert failed_on <= {f"{MODEL}-v4"}, load.failures
        names = [d["name"] for d in gateway.cli_json("online-deployment", "list", "-e", E)]
        assert sorted(names) == [f"{MODEL}-v2", f"{MODEL}-v3"]  # v3 kept, v4 deleted
    print(f"\nmodel create → first live request on v2: {first_live_s:.2f} s")

    # kill -9 during the rollout of v5: the restarted server carries the run on
    gateway.cli_json(*policy_flags, "--old-deployment", "scale-to-zero")
    register(gateway, tmp_path, 5, "good")
    wait_until(lambda: (run_of(gateway, 5) or {}).get("stage") == "rolling_out",
               timeout=60, interval=0.1, what="v5 to reach its rollout")
    processes.stop(gateway.started, sig=9)
    restarted = start_serve(processes, gateway.home)
    # the restarted rollout bakes again at once, so a client load before its instances are up
    # would meet 503s there (the rollout engine's resume does not wait for readiness)
    wait_until(lambda: ready(restarted, f"{MODEL}-v2") and ready(restarted, f"{MODEL}-v5"),
               timeout=60, what="both live deployments ready again")
    with Load(restarted, key) as load:
        resumed = wait_run(restarted, 5, ("succeeded", "failed", "rolled_back",
                                          "stopped_at_gate"))
    assert resumed["state"] == "succeeded", resumed["reason"]
    assert traffic(restarted) == {f"{MODEL}-v5": 100}
    names = [d["name"] for d in restarted.cli_json("online-deployment", "list", "-e", E)]
    assert f"{MODEL}-v2" in names  # kept, at 0%, and scaled to zero by the autoscaler

    def v2_scale() -> dict[str, Any]:
        shown: dict[str, Any] = restarted.cli_json("online-deployment", "show", "-e", E,
                                                   "-n", f"{MODEL}-v2")
        return shown

    wait_until(lambda: (v2_scale().get("scale_status") or {}).get("desired_instances") == 0,
               timeout=60, what="the replaced v2 scaled to zero")
    assert v2_scale()["scale_settings"]["min_instances"] == 0

"""The runtime's deployment operations with a real store, supervisor and scoring server
processes: `apply_change` never waits for an instance, the follower decides the outcome, and
`mark_failed` (the hook for steps before an instance starts) ends an operation in `Failed`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from control_plane.home import StateDir
from control_plane.instances.supervisor import Supervisor
from control_plane.runtime import Runtime
from control_plane.specs.resources import DeploymentSpec, EndpointSpec, ProbeSettings
from gateway import GatewaySettings, SnapshotHolder

KEY = "rt-endpoint/slow"
SCORE = """\
import os, time

def init():
    while not os.path.exists(os.environ["GATE"]):
        time.sleep(0.05)

def run(raw_data):
    return {"ok": True}
"""


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def run_with_runtime(tmp_path: Path, body: Callable[[Runtime, Path], Awaitable[None]],
                     failure_threshold: int = 60, slack_s: float = 30.0) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SCORE)
    gate = tmp_path / "gate"
    state_dir = StateDir(tmp_path / "home")
    state_dir.ensure()

    async def main() -> None:
        runtime = Runtime(state_dir, GatewaySettings(), "token", startup_slack_s=slack_s)
        supervisor = Supervisor(state_dir.logs, runtime.publish, lambda _: 0)
        runtime.attach(holder=SnapshotHolder(), supervisor=supervisor,
                       scoring_url="http://127.0.0.1:9")
        try:
            runtime.store.create_endpoint(EndpointSpec("rt-endpoint"))
            runtime.store.create_deployment(DeploymentSpec(
                "slow", "rt-endpoint", code_dir=str(code), scoring_script="score.py",
                environment_variables={"GATE": str(gate)},
                readiness_probe=ProbeSettings(initial_delay=0, period=1,
                                              failure_threshold=failure_threshold)),
                all_traffic=True)
            await body(runtime, gate)
        finally:
            await runtime.stop_provisioning()
            await supervisor.close()
            runtime.close()

    asyncio.run(main())


def state(runtime: Runtime) -> str:
    return runtime.store.state().status(KEY).state


def test_the_follower_decides_after_apply_change_returned(tmp_path: Path) -> None:
    async def body(runtime: Runtime, gate: Path) -> None:
        await runtime.apply_change()  # returns with the instance still in init()
        await runtime.provision(KEY, wait=False)
        assert runtime.supervisor.ready_instances()[KEY] == ()
        await until(lambda: runtime.supervisor.status(KEY) != [], "the instance to start")
        assert state(runtime) == "Creating"
        assert runtime.store.endpoint("rt-endpoint").spec.traffic == {"slow": 0}
        gate.touch()
        await until(lambda: state(runtime) == "Succeeded", "Succeeded")
        assert runtime.store.endpoint("rt-endpoint").spec.traffic == {"slow": 100}

    run_with_runtime(tmp_path, body)


def test_mark_failed_ends_a_create_and_stops_its_instances(tmp_path: Path) -> None:
    async def body(runtime: Runtime, gate: Path) -> None:
        await runtime.provision(KEY, wait=False)
        await until(lambda: runtime.supervisor.status(KEY) != [], "the instance to start")
        assert await runtime.mark_failed(KEY, "environment build failed: no such package")
        status = runtime.store.state().status(KEY)
        assert (status.state, status.reason) == ("Failed",
                                                 "environment build failed: no such package")
        await until(lambda: runtime.supervisor.status(KEY) == [], "its instances to stop")
        gate.touch()  # too late: nothing runs, nothing changes
        assert not await runtime.mark_failed(KEY, "again")
        assert runtime.store.endpoint("rt-endpoint").spec.traffic == {"slow": 0}
        assert state(runtime) == "Failed"

    run_with_runtime(tmp_path, body)


def test_a_create_not_ready_within_its_probe_budget_fails_with_the_log(tmp_path: Path) -> None:
    async def body(runtime: Runtime, gate: Path) -> None:
        await runtime.provision(KEY)  # the gate never opens: init() never returns
        status = runtime.store.state().status(KEY)
        assert status.state == "Failed", status
        assert status.reason.startswith("not all of its 1 instance(s) became ready within 2 s "
                                        "(readiness_probe: initial_delay 0 + period 1 x "
                                        "failure_threshold 1, plus 1 s to start)"), status.reason
        assert "last lines of the instance log" in status.reason
        assert runtime.store.endpoint("rt-endpoint").spec.traffic == {"slow": 0}
        await until(lambda: runtime.supervisor.status(KEY) == [], "its instances to stop")

    run_with_runtime(tmp_path, body, failure_threshold=1, slack_s=1.0)


def test_a_start_finishes_what_a_stop_interrupted(tmp_path: Path) -> None:
    """Stored `Deleting` (the server died before the row went) and `Creating`: the next start
    decides both, and `resume_provisioning(wait=True)` returns once it has."""
    async def body(runtime: Runtime, gate: Path) -> None:
        store = runtime.store
        store.create_deployment(DeploymentSpec("gone", "rt-endpoint",
                                               urls=("http://127.0.0.1:9/score",)))
        store.begin_delete("rt-endpoint", "gone")
        gate.touch()
        await runtime.apply_change()
        keys = await runtime.resume_provisioning(wait=True)
        assert sorted(keys) == ["rt-endpoint/gone", KEY]
        assert "rt-endpoint/gone" not in store.state().deployments
        assert state(runtime) == "Succeeded"
        assert runtime.provisioning_line(KEY) == (
            "deployment slow of endpoint rt-endpoint: Succeeded")

    run_with_runtime(tmp_path, body)

"""The instance supervisor, with real processes on loopback (a stand-in scoring server).

Each test runs its own event loop (uvloop, as the gateway does); every instance is stopped by
`Supervisor.close()` in a `finally`, and any pid that ever started is SIGKILLed afterwards as
a safety net, so nothing outlives a test even when it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import joblib  # type: ignore[import-untyped]
import pytest

from control_plane.errors import ValidationError
from control_plane.instances.model_dir import InstanceFolders
from control_plane.instances.supervisor import Supervisor, SupervisorTimings
from control_plane.specs import loader as yaml_loader
from control_plane.specs.resources import DeploymentSpec, ProbeSettings, RequestSettings
from tests.support import unix_http
from tests.support.gateway import trained_example
from tests.support.loops import run_bounded
from tests.support.processes import REPO_ROOT, ProcessGroup, wait_until

SUPPORT = Path(__file__).with_name("instance_support")
STANDIN = SUPPORT / "standin_server.py"
KEY = "shop/blue"
FAST = SupervisorTimings(startup_poll_s=0.05, backoff_initial_s=0.3, backoff_max_s=2.0,
                         stop_grace_s=3.0, drain_margin_s=0.5)
QUICK_PROBE = ProbeSettings(initial_delay=0, period=1, timeout=1, success_threshold=1,
                            failure_threshold=2)
PATIENT_PROBE = ProbeSettings(initial_delay=0, period=1, timeout=1, success_threshold=1,
                              failure_threshold=30)


def command(spec: DeploymentSpec, fd: int, python: Path | None = None) -> list[str]:
    return [str(python or sys.executable), str(STANDIN), "--fd", str(fd),
            "--code", spec.code_dir or "", "--entry", spec.scoring_script or ""]


@dataclass
class Events:
    """Records what the supervisor reports (stands in for gateway.telemetry.metrics)."""

    ready: dict[str, int] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    probe_failures: Counter[str] = field(default_factory=Counter)

    def ready_instances(self, endpoint: str, deployment: str, count: int) -> None:
        self.ready[f"{endpoint}/{deployment}"] = count

    def restarted(self, endpoint: str, deployment: str) -> None:
        self.restarts[f"{endpoint}/{deployment}"] += 1

    def probe_failed(self, endpoint: str, deployment: str, probe: str) -> None:
        self.probe_failures[probe] += 1


@dataclass
class Harness:
    tmp: Path
    supervisor: Supervisor
    events: Events
    in_flight: dict[str, int]
    changes: list[dict[str, tuple[str, ...]]]

    def spec(self, count: int = 2, env: dict[str, str] | None = None,
             readiness: ProbeSettings = QUICK_PROBE, liveness: ProbeSettings = PATIENT_PROBE,
             timeout_ms: int = 5000) -> DeploymentSpec:
        base = {"STANDIN_STARTS_FILE": str(self.tmp / "starts.txt"),
                "STANDIN_FAIL_FILE": str(self.tmp / "fail-readiness"),
                "STANDIN_HANG_FILE": str(self.tmp / "hang")}
        return DeploymentSpec(name="blue", endpoint_name="shop", code_dir=str(self.tmp / "code"),
                              scoring_script="score.py", model_path=str(self.tmp / "model"),
                              environment_variables={**base, **(env or {})},
                              instance_count=count, readiness_probe=readiness,
                              liveness_probe=liveness,
                              request_settings=RequestSettings(request_timeout_ms=timeout_ms))

    def ready_ids(self) -> list[str]:
        return [route.id for route in self.supervisor.ready_instances().get(KEY, ())]

    def states(self) -> dict[str, str]:
        return {s.id: s.state for s in self.supervisor.status(KEY)}

    def pids(self) -> dict[str, int | None]:
        return {s.id: s.pid for s in self.supervisor.status(KEY)}

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; status: "
                                   f"{self.supervisor.status(KEY)}")
            await asyncio.sleep(0.05)

    async def start(self, spec: DeploymentSpec) -> None:
        await self.supervisor.reconcile({KEY: spec})
        assert await self.supervisor.wait_ready(KEY, 30), self.supervisor.status(KEY)


Body = Callable[[Harness], Awaitable[None]]
Runner = Callable[[Body], None]


@pytest.fixture
def run_with_supervisor(tmp_path: Path) -> Iterator[Runner]:
    """Runs a test body against a fresh Supervisor in a uvloop loop; cleans up every process."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("42")
    (tmp_path / "code").mkdir()

    def run(body: Body) -> None:
        async def main() -> None:
            events = Events()
            in_flight: dict[str, int] = {}
            changes: list[dict[str, tuple[str, ...]]] = []
            harness: Harness

            def on_change() -> None:
                changes.append({k: tuple(r.id for r in v)
                                for k, v in harness.supervisor.ready_instances().items()})

            supervisor = Supervisor(tmp_path / "logs", on_change,
                                    lambda instance_id: in_flight.get(instance_id, 0), command,
                                    work_root=tmp_path / "run", timings=FAST, events=events)
            harness = Harness(tmp_path, supervisor, events, in_flight, changes)
            try:
                await body(harness)
            finally:
                await supervisor.close()

        run_bounded(main())

    try:
        yield run
    finally:
        for pid in started_pids(tmp_path):
            _kill_group(pid)


def started_pids(tmp: Path) -> list[int]:
    starts = tmp / "starts.txt"
    return [int(line) for line in starts.read_text().split()] if starts.exists() else []


def alive(pid: int) -> bool:
    """Running, not a zombie (a reparented child may wait a moment for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --- tests ---------------------------------------------------------------------------------


def test_two_instances_start_ready_with_azure_env_and_logs(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        spec = h.spec(count=2, env={"GREETING": "hello", "STANDIN_CHECK_PATH":
                                    "model/weights.txt"})
        await h.start(spec)
        assert h.ready_ids() == ["blue-0", "blue-1"]
        assert h.events.ready[KEY] == 2
        assert h.changes and h.changes[-1][KEY] == ("blue-0", "blue-1")
        statuses = h.supervisor.status(KEY)
        urls = {s.url for s in statuses}
        assert len(urls) == 2 and all(u.startswith("unix:") for u in urls)
        for status in statuses:
            assert status.pid and alive(status.pid) and status.restarts == 0
            assert await asyncio.to_thread(unix_http.ok, status.url)
        await h.until(lambda: h.supervisor.logs(KEY).count("standin start") == 2, "both logs")
        logs = h.supervisor.logs(KEY)
        for instance_id in ("blue-0", "blue-1"):
            line = next(x for x in logs.splitlines() if x.startswith(f"[{instance_id}] standin"))
            assert "greeting=hello" in line and "check=True" in line  # model/<file> resolves
            assert "entry=score.py" in line and "entry_env=score.py" in line
            assert "workers=1" in line
        assert (h.tmp / "logs" / "shop" / "blue" / "blue-0.log").exists()
        assert len(h.supervisor.logs(KEY, lines=1).splitlines()) == 1

    run_with_supervisor(body)


def test_sigkilled_instance_restarts_on_its_port_while_the_other_stays_ready(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=2))
        before = {s.id: s for s in h.supervisor.status(KEY)}
        changes_before = len(h.changes)
        os.kill(before["blue-0"].pid or 0, signal.SIGKILL)
        other_states: set[str] = set()

        def restarted() -> bool:
            other_states.add(h.states()["blue-1"])
            now = {s.id: s for s in h.supervisor.status(KEY)}["blue-0"]
            return now.restarts == 1 and now.state == "ready"

        await h.until(restarted, "blue-0 to be restarted and ready")
        after = {s.id: s for s in h.supervisor.status(KEY)}
        assert other_states == {"ready"}
        assert after["blue-1"].pid == before["blue-1"].pid and after["blue-1"].restarts == 0
        assert after["blue-0"].pid != before["blue-0"].pid
        assert after["blue-0"].url == before["blue-0"].url  # the socket outlives the process
        assert after["blue-0"].last_exit_code == -signal.SIGKILL
        assert after["blue-0"].last_exit_reason == "Error"
        assert h.events.restarts[KEY] == 1
        # it was ready: it kept its place in rotation while its successor started on its socket
        assert all(change.get(KEY) == ("blue-0", "blue-1")
                   for change in h.changes[changes_before:])
        assert h.ready_ids() == ["blue-0", "blue-1"]

    run_with_supervisor(body)


def test_init_failure_is_failed_with_backoff_not_a_hot_loop(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.supervisor.reconcile({KEY: h.spec(count=1, env={"STANDIN_EXIT_CODE": "3"})})
        # Counted, not timed: three failures observed, each followed by one backoff.
        await h.until(lambda: h.events.restarts[KEY] >= 3, "three failed starts", timeout=30)
        # Observed between two starts: at any moment a restart may be under way.
        await h.until(lambda: h.states()["blue-0"] == "failed", "the failed state", timeout=20)
        restarts = h.events.restarts[KEY]
        starts = len(started_pids(h.tmp))
        waits = [line.rsplit(" ", 1)[-1] for line in h.supervisor.logs(KEY).splitlines()
                 if "starting again in" in line]
        status = h.supervisor.status(KEY)[0]
        # a hot loop starts again at once; a backoff waits twice as long after each failure
        assert starts == restarts, (starts, restarts)
        assert waits[:3] == ["0.3s", "0.6s", "1.2s"], waits
        assert len(waits) == restarts
        assert status.state == "failed" and status.last_exit_code == 3
        assert status.last_error and "init()" in status.last_error
        assert h.ready_ids() == []
        assert "init() failed on purpose" in h.supervisor.logs(KEY)

    run_with_supervisor(body)


def test_scale_down_drains_until_nothing_is_in_flight(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=2, timeout_ms=60000))
        leaving = h.pids()["blue-1"] or 0
        h.in_flight["blue-1"] = 1
        await h.supervisor.reconcile({KEY: h.spec(count=1, timeout_ms=60000)})
        assert h.ready_ids() == ["blue-0"]  # out of rotation at once
        assert h.changes[-1][KEY] == ("blue-0",)
        assert h.states() == {"blue-0": "ready", "blue-1": "draining"}
        await asyncio.sleep(1.0)
        assert alive(leaving) and h.states()["blue-1"] == "draining"  # held by the request
        h.in_flight["blue-1"] = 0
        await h.until(lambda: not alive(leaving), "the drained instance to stop")
        await h.until(lambda: list(h.states()) == ["blue-0"], "blue-1 to be forgotten")
        assert await h.supervisor.wait_ready(KEY, 5)
        assert h.states() == {"blue-0": "ready"}

    run_with_supervisor(body)


def test_scale_up_adds_instances_and_keeps_the_running_one(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=1))
        first = h.pids()["blue-0"]
        await h.supervisor.reconcile({KEY: h.spec(count=3)})
        assert h.ready_ids() == ["blue-0", "blue-1", "blue-2"]  # reconcile waited for them
        assert h.pids()["blue-0"] == first
        assert len(started_pids(h.tmp)) == 3

    run_with_supervisor(body)


def test_scale_changes_the_count_of_what_runs_and_drains_before_stopping(
        run_with_supervisor: Runner) -> None:
    """`Supervisor.scale`, the autoscaler's hook: the running spec at another count, added
    instances in the background, removed ones out of rotation at once and drained; a later
    reconcile with the same count changes nothing."""
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=1, timeout_ms=60000))
        first = h.pids()["blue-0"]
        assert await h.supervisor.scale(KEY, 2)
        await h.until(lambda: h.ready_ids() == ["blue-0", "blue-1"], "a second instance")
        leaving = h.pids()["blue-1"] or 0
        h.in_flight["blue-1"] = 1
        assert await h.supervisor.scale(KEY, 1)
        assert h.ready_ids() == ["blue-0"] and h.states()["blue-1"] == "draining"
        assert alive(leaving)  # held by its request
        h.in_flight["blue-1"] = 0
        await h.until(lambda: not alive(leaving), "the drained instance to stop")
        assert await h.supervisor.scale(KEY, 0)  # to zero
        await h.until(lambda: h.states() == {}, "no instance left")
        assert h.supervisor.outcome(KEY).ready  # zero of zero wanted
        assert not await h.supervisor.scale("shop/other", 1)  # runs nothing here
        await h.supervisor.reconcile({KEY: h.spec(count=1, timeout_ms=60000)})
        await h.until(lambda: h.ready_ids() == ["blue-0"], "one instance again")
        assert h.pids()["blue-0"] != first

    run_with_supervisor(body)


def test_readiness_failure_takes_it_out_of_rotation_and_back(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=2))
        pid = h.pids()["blue-0"]
        flag = h.tmp / "fail-readiness"
        flag.write_text("")  # both instances fail GET /; liveness is patient (30 failures)
        await h.until(lambda: h.ready_ids() == [], "both to turn unready", timeout=20)
        assert set(h.states().values()) == {"unready"}
        assert h.changes[-1][KEY] == ()
        assert h.events.probe_failures["readiness"] >= 2
        assert "answered 503" in (h.supervisor.status(KEY)[0].last_error or "")
        flag.unlink()
        await h.until(lambda: h.ready_ids() == ["blue-0", "blue-1"], "both back", timeout=20)
        assert h.pids()["blue-0"] == pid and h.events.restarts[KEY] == 0

    run_with_supervisor(body)


def test_liveness_failure_restarts_the_instance(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        liveness = ProbeSettings(initial_delay=0, period=1, timeout=1, success_threshold=1,
                                 failure_threshold=2)
        await h.start(h.spec(count=1, readiness=PATIENT_PROBE, liveness=liveness))
        pid = h.pids()["blue-0"] or 0
        (h.tmp / "hang").write_text("")
        await h.until(lambda: not alive(pid), "the hung instance to be killed", timeout=20)
        status = h.supervisor.status(KEY)[0]
        # Out of rotation from the failed probe on, never "ready" while it is being killed.
        assert status.state != "ready" or status.restarts == 1, status
        (h.tmp / "hang").unlink()
        await h.until(lambda: h.ready_ids() == ["blue-0"], "the restarted instance", timeout=20)
        status = h.supervisor.status(KEY)[0]
        assert status.restarts == 1 and "liveness" in (status.last_error or "")
        assert h.events.probe_failures["liveness"] >= 2

    run_with_supervisor(body)


def test_an_instance_failing_liveness_leaves_rotation_before_it_is_killed(
        run_with_supervisor: Runner) -> None:
    """The kill takes up to stop_grace_s (SIGTERM ignored here): no traffic meanwhile."""
    async def body(h: Harness) -> None:
        liveness = ProbeSettings(initial_delay=0, period=1, timeout=1, success_threshold=1,
                                 failure_threshold=2)
        await h.start(h.spec(count=1, readiness=PATIENT_PROBE, liveness=liveness,
                             env={"STANDIN_IGNORE_TERM": "1"}))
        pid = h.pids()["blue-0"] or 0
        (h.tmp / "hang").write_text("")
        await h.until(lambda: h.ready_ids() == [], "the hung instance to leave rotation",
                      timeout=20)
        assert alive(pid), "it left rotation only once it was dead"
        await h.until(lambda: not alive(pid), "the SIGKILL after the grace", timeout=20)
        (h.tmp / "hang").unlink()
        await h.until(lambda: h.ready_ids() == ["blue-0"], "the restarted instance", timeout=20)
        assert h.supervisor.status(KEY)[0].restarts == 1

    run_with_supervisor(body)


def test_changed_spec_rolls_over_without_an_empty_ready_set(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=2, env={"GREETING": "v1"}))
        old = set(h.pids().values())
        seen = len(h.changes)
        await h.supervisor.reconcile({KEY: h.spec(count=2, env={"GREETING": "v2"})})
        assert await h.supervisor.wait_ready(KEY, 30), h.supervisor.status(KEY)
        assert h.ready_ids() == ["blue-2", "blue-3"]
        assert all(change[KEY] for change in h.changes[seen:])  # never empty meanwhile
        await h.until(lambda: not any(alive(pid or 0) for pid in old), "old instances to stop")
        logs = h.supervisor.logs(KEY)
        assert "[blue-2] standin start" in logs and "greeting=v2" in logs

    run_with_supervisor(body)


def test_a_new_interpreter_for_a_deployment_is_a_new_process(
        run_with_supervisor: Runner) -> None:
    """The environment's python comes through reconcile; changing it rolls the instances over
    (and the same spec with the same python changes nothing)."""
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=1))
        [old] = h.pids().values()
        other = h.tmp / "env-python"  # another path to an interpreter: another environment
        other.symlink_to(sys.executable)
        await h.supervisor.reconcile({KEY: h.spec(count=1)}, {KEY: other})
        assert await h.supervisor.wait_ready(KEY, 30), h.supervisor.status(KEY)
        [new] = h.pids().values()
        assert new != old and new is not None
        argv0 = Path(f"/proc/{new}/cmdline").read_bytes().split(b"\0")[0]
        assert argv0 == str(other).encode()
        await h.supervisor.reconcile({KEY: h.spec(count=1)}, {KEY: other})
        assert list(h.pids().values()) == [new]

    run_with_supervisor(body)


def test_removed_deployment_and_close_leave_no_process(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        await h.start(h.spec(count=2))
        pids = [pid or 0 for pid in h.pids().values()]
        await h.supervisor.reconcile({})
        assert KEY not in h.supervisor.ready_instances()
        await h.until(lambda: not any(alive(pid) for pid in pids), "removed instances to stop")
        await h.until(lambda: h.supervisor.status(KEY) == [], "the deployment to be forgotten")
        await h.start(h.spec(count=2))
        pids = [pid or 0 for pid in h.pids().values()]
        await h.supervisor.close()
        assert not any(alive(pid) for pid in pids)
        assert h.supervisor.ready_instances() == {}
        with pytest.raises(RuntimeError):
            await h.supervisor.reconcile({KEY: h.spec()})

    run_with_supervisor(body)


def test_external_deployment_launches_nothing(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        spec = DeploymentSpec(name="blue", endpoint_name="shop",
                              urls=("http://127.0.0.1:9/v1/predict", "http://127.0.0.1:10"))
        await h.supervisor.reconcile({KEY: spec})
        routes = h.supervisor.ready_instances()[KEY]
        assert [(r.id, r.url, r.score_path) for r in routes] == [
            ("http://127.0.0.1:9/v1/predict", "http://127.0.0.1:9", "/v1/predict"),
            ("http://127.0.0.1:10", "http://127.0.0.1:10", "/score")]
        assert [s.state for s in h.supervisor.status(KEY)] == ["ready", "ready"]
        assert started_pids(h.tmp) == []
        with pytest.raises(ValidationError, match="external url"):
            await h.supervisor.reconcile({KEY: spec.with_changes(urls=("ftp://x",))})

    run_with_supervisor(body)


def test_bad_keys_and_log_paths_are_refused(
        run_with_supervisor: Runner) -> None:
    async def body(h: Harness) -> None:
        for key in ("../etc/passwd", "shop/../../x", "shop", "shop/blue/x", "shop/b"):
            with pytest.raises(ValidationError):
                h.supervisor.logs(key)
        with pytest.raises(ValidationError, match="does not match"):
            await h.supervisor.reconcile({"shop/green": h.spec()})
        assert h.supervisor.logs(KEY) == ""  # nothing ran yet
        secret = h.tmp / "secret.txt"
        secret.write_text("do not show\n")
        folder = h.tmp / "logs" / "shop" / "blue"
        folder.mkdir(parents=True)
        (folder / "blue-7.log").symlink_to(secret)  # a link planted beside the real logs
        (folder / "blue-8.log").write_text("mine\n")
        assert h.supervisor.logs(KEY) == "[blue-8] mine\n"

    run_with_supervisor(body)


def test_model_dir_keeps_the_model_folder_name(tmp_path: Path) -> None:
    model = tmp_path / "models" / "model"
    model.mkdir(parents=True)
    (model / "m.pkl").write_text("x")
    folders = InstanceFolders(tmp_path / "work")
    try:
        first = folders.allocate(str(model) + "/")
        assert (first.model_dir / "model" / "m.pkl").read_text() == "x"
        assert folders.allocate(str(model)).model_dir != first.model_dir  # one per instance
        assert list(folders.allocate(None).model_dir.iterdir()) == []
        assert first.socket.parent == first.model_dir.parent == first.root
        folders.release(first)
        assert not first.root.exists() and model.is_dir()  # the link goes, not the model
    finally:
        for folder in (tmp_path / "work").iterdir():
            shutil.rmtree(folder)


def test_instances_die_when_the_gateway_is_sigkilled(processes: ProcessGroup,
                                                     tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    parent = processes.python(str(SUPPORT / "supervisor_parent.py"), str(tmp_path),
                              str(pids_file), name="parent")
    children: list[int] = []
    try:
        wait_until(pids_file.exists, timeout=60, what=f"pids file; log: {parent.log()}")
        children = json.loads(pids_file.read_text())
        assert len(children) == 2 and all(alive(pid) for pid in children)
        os.kill(parent.proc.pid, signal.SIGKILL)
        parent.proc.wait(10)
        wait_until(lambda: not any(alive(pid) for pid in children), timeout=20,
                   what="instances to die with their parent")
    finally:
        for pid in children:
            _kill_group(pid)


# --- with the real scoring server (python -m scoring_servers.azureml) ------------------------

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"


def test_real_scoring_server_serves_the_example_model(tmp_path: Path) -> None:
    """Default command, Azure's model-dir layout: the example's score.py finds its model."""
    train = _load_module(EXAMPLE / "train.py")
    example = trained_example(tmp_path / "example")  # never trains into the checkout
    spec = yaml_loader.load_file(example / "blue-deployment.yml")
    assert isinstance(spec, DeploymentSpec)
    key = f"{spec.endpoint_name}/{spec.name}"
    request = (example / "sample-request.json").read_bytes()
    expected = joblib.load(train.model_path(example, "model-1")).predict(
        json.loads(request)["data"]).tolist()

    async def main() -> None:
        supervisor = Supervisor(tmp_path / "logs", lambda: None, lambda _id: 0, timings=FAST,
                                events=Events(), work_root=tmp_path / "run")
        try:
            await supervisor.reconcile({key: spec})
            assert await supervisor.wait_ready(key, 60), supervisor.status(key)
            route = supervisor.ready_instances()[key][0]
            status, reply = await asyncio.to_thread(unix_http.request, route.url, "POST",
                                                    route.score_path, request)
            assert status == 200 and json.loads(reply) == expected
        finally:
            await supervisor.close()

    run_bounded(main())


def test_real_scoring_server_init_failure_is_failed(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    raise RuntimeError('no model here')\n\n"
                                   "def run(raw_data):\n    return raw_data\n")
    spec = DeploymentSpec(name="blue", endpoint_name="shop", code_dir=str(code),
                          scoring_script="score.py")

    async def main() -> None:
        supervisor = Supervisor(tmp_path / "logs", lambda: None, lambda _id: 0, timings=FAST,
                                events=Events(), work_root=tmp_path / "run")
        try:
            await supervisor.reconcile({KEY: spec})
            await _until(lambda: supervisor.status(KEY)[0].last_exit_code == 3, 60)
            status = supervisor.status(KEY)[0]
            assert status.state == "failed" and "init()" in (status.last_error or "")
            assert "no model here" in supervisor.logs(KEY)
        finally:
            await supervisor.close()

    run_bounded(main())


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def test_outcome_without_waiting_follows_readiness_and_init_failure(
        run_with_supervisor: Runner) -> None:
    """`reconcile(wait=False)` returns before any instance is ready (the runtime follows
    `outcome`); a script whose init() fails is a failure at once, not after the budget."""
    async def body(h: Harness) -> None:
        await h.supervisor.reconcile({KEY: h.spec(count=2)}, wait=False)
        assert h.supervisor.outcome(KEY).ready is False  # returned before they were up
        await h.until(lambda: h.supervisor.outcome(KEY).ready, "both instances ready")
        broken = h.spec(count=2, env={"STANDIN_EXIT_CODE": "3"})
        await h.supervisor.reconcile({KEY: broken}, wait=False)
        await h.until(lambda: h.supervisor.outcome(KEY).failure is not None,
                      "the init failure to show")
        failure = h.supervisor.outcome(KEY).failure or ""
        assert "init()" in failure and h.ready_ids() == ["blue-0", "blue-1"]  # old ones serve
        await h.supervisor.reconcile({KEY: h.spec(count=2)}, wait=False)  # back: aborted
        await h.until(lambda: h.supervisor.outcome(KEY).ready, "the old version again")
        await h.until(lambda: len(h.states()) == 2, "the broken instances to stop")
        assert h.ready_ids() == ["blue-0", "blue-1"]

    run_with_supervisor(body)

"""Memory limits per instance: sized from instance_type or a setting, set as RLIMIT_AS by the
kernel, and an instance that hits its limit is OOMKilled (shown as such) and restarted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from control_plane.errors import ValidationError
from control_plane.instances.limits import memory_limit_mb, parse_memory_mb
from control_plane.instances.supervisor import Supervisor, SupervisorTimings
from control_plane.specs.resources import DeploymentSpec
from tests.support import unix_http
from tests.support.loops import run_bounded

KEY = "shop/blue"
LIMIT_MB = 400
TIMINGS = SupervisorTimings(startup_poll_s=0.05, backoff_initial_s=0.3, backoff_max_s=2.0,
                            stop_grace_s=3.0)
GREEDY = """\
def init():
    pass


def run(raw_data):
    hog = bytearray(2 * 1024 * 1024 * 1024)  # 2 GiB: far past the limit
    return len(hog)
"""


def spec_with(instance_type: str | None) -> DeploymentSpec:
    not_applied = {"instance_type": instance_type} if instance_type else {}
    return DeploymentSpec(name="blue", endpoint_name="shop", not_applied=not_applied)


def test_the_limit_comes_from_instance_type_else_the_setting() -> None:
    assert memory_limit_mb(spec_with("Standard_DS3_v2"), None) == 14 * 1024
    assert memory_limit_mb(spec_with("standard_f2s_v2"), 512) == 4 * 1024
    assert memory_limit_mb(spec_with("Standard_NC6s_v3"), 512) == 512  # not a listed size
    assert memory_limit_mb(spec_with(None), None) is None
    assert parse_memory_mb(" 2048 ") == 2048 and parse_memory_mb("") is None
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ValidationError):
            parse_memory_mb(bad)


def test_an_instance_past_its_memory_limit_is_oom_killed_and_restarted(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(GREEDY)
    spec = DeploymentSpec(name="blue", endpoint_name="shop", code_dir=str(code),
                          scoring_script="score.py")

    async def main() -> None:
        supervisor = Supervisor(tmp_path / "logs", lambda: None, lambda _id: 0,
                                work_root=tmp_path / "run", timings=TIMINGS, memory_mb=LIMIT_MB)
        try:
            await supervisor.reconcile({KEY: spec})
            assert await supervisor.wait_ready(KEY, 60), supervisor.status(KEY)
            first = supervisor.status(KEY)[0]
            assert first.memory_limit_mb == LIMIT_MB
            limits = Path(f"/proc/{first.pid}/limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
            assert line.split()[3:5] == [str(LIMIT_MB * 1024 * 1024)] * 2, line
            try:
                await asyncio.to_thread(unix_http.request, first.url, "POST", "/score", b"{}")
            except OSError:
                pass  # killed before it answered: that is allowed too

            def restarted() -> bool:
                now = supervisor.status(KEY)[0]
                return now.restarts >= 1 and now.state == "ready" and now.pid != first.pid

            await _until(restarted, 60)
            status = supervisor.status(KEY)[0]
            assert status.last_exit_reason == "OOMKilled", status
            assert status.last_error and "OOMKilled" in status.last_error
            assert asdict(status)["last_exit_reason"] == "OOMKilled"  # what `show` returns
            assert "MemoryError" in supervisor.logs(KEY)
        finally:
            await supervisor.close()

    run_bounded(main())


async def _until(check: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)

"""Connection floods (issue 10, "Connection floods").

Past `--max-connections` the longest-idle connection is cut for each new one, so silent
connections cannot lock clients out until the header timeout frees them (new connections
used to be closed at once). The scoring cap also follows the descriptor limit, so a flood
never takes the descriptors the admin listener needs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.reliability.stack import FAULTS, Stack, start_fault_backend, write_config
from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup

MAX_CONNECTIONS = 64
SERVE_FLAGS = ("--max-connections", str(MAX_CONNECTIONS), "--header-timeout-s", "60")
FLOOD = 400
NOFILE = 256


@contextmanager
def silent_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that never send a byte."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _score(url: str, key: str) -> int:
    with httpx.Client(timeout=10) as client:  # a new connection each time
        return client.post(url, content=b"{}", headers={
            "Authorization": f"Bearer {key}", "azureml-model-deployment": "good"}).status_code


def test_a_flood_of_silent_connections_does_not_lock_clients_out(stack: Stack) -> None:
    with silent_connections(stack.port, FLOOD):
        # Well inside the 60 s header timeout that would otherwise be the only way out.
        assert [_score(stack.score_url, stack.keys[FAULTS]) for _ in range(20)] == [200] * 20
    assert stack.log_has_no_traceback()


def _serve_with_nofile(processes: ProcessGroup, tmp: Path, nofile: int) -> RunningGateway:
    backend = start_fault_backend(processes, tmp)
    write_config(tmp / "config", backend)
    return start_serve(processes, tmp / "home", str(tmp / "config"),
                       extra=("--header-timeout-s", "60"),
                       launcher=("prlimit", f"--nofile={nofile}:{nofile}"))


def test_a_low_descriptor_limit_caps_connections_and_the_admin_listener_keeps_working(
        tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "logs") as processes:
        gateway = _serve_with_nofile(processes, tmp_path, NOFILE)
        cap = (NOFILE - 64) // 2
        assert gateway.started.log().count(f"RLIMIT_NOFILE is {NOFILE}") == 1
        assert f"capped at {cap}" in gateway.started.log()
        key = gateway.key(FAULTS)
        token = (gateway.home / "admin_token").read_text().strip()
        port = int(gateway.scoring_url.rsplit(":", 1)[1])
        with silent_connections(port, FLOOD):
            admin = httpx.get(f"{gateway.admin_url}/v1/endpoints", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
            assert admin.status_code == 200
            assert _score(f"{gateway.scoring_url}/endpoints/{FAULTS}/score", key) == 200
        log = gateway.started.log()
        assert "Traceback" not in log and "Too many open files" not in log

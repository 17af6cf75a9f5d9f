"""SIGHUP applies the YAML `serve` was started with again; SIGUSR1 is logged (no log file to
reopen). Neither ends the server (both would by default) or drops a request in flight."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import RunningGateway, start_serve, start_upstream
from tests.support.processes import ProcessGroup, wait_until

E = "signalled"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RunningGateway, Path]]:
    folder = tmp_path / "config"
    folder.mkdir()
    with ProcessGroup(tmp_path / "process-logs") as group:
        backend = start_upstream(group, tmp_path, delay=1.0)  # requests stay in flight 1 s
        (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\n"
                                             "traffic: {blue: 100}\n")
        (folder / "blue.yml").write_text(f"name: blue\nendpoint_name: {E}\n"
                                         f"urls: [{backend}/score]\n")
        yield start_serve(group, tmp_path / "home", str(folder)), folder


def _admin_status(gateway: RunningGateway, path: str) -> int:
    token = (gateway.home / "admin_token").read_text().strip()
    return httpx.get(f"{gateway.admin_url}{path}", timeout=30,
                     headers={"Authorization": f"Bearer {token}"}).status_code


def _in_flight(gateway: RunningGateway, key: str, results: list[int]) -> threading.Thread:
    def send() -> None:
        results.append(gateway.score(E, b"{}", key).status_code)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_sighup_reloads_the_yaml_without_dropping_requests(
        served: tuple[RunningGateway, Path]) -> None:
    gateway, folder = served
    pid = gateway.started.proc.pid
    key = gateway.key(E)
    (folder / "second.yml").write_text("name: second-one\nauth_mode: key\n")
    results: list[int] = []
    thread = _in_flight(gateway, key, results)
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: _admin_status(gateway, "/v1/endpoints/second-one") == 200, timeout=60,
               what="SIGHUP to apply the new YAML")
    thread.join(60)
    assert results == [200]
    assert gateway.started.proc.poll() is None and gateway.info["pid"] == pid

    (folder / "broken.yml").write_text("name: [not, a, name\n")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "reload refused" in gateway.started.log(), timeout=60,
               what="the broken YAML to be refused")
    assert gateway.started.proc.poll() is None
    assert gateway.score(E, b"{}", key).status_code == 200
    assert _admin_status(gateway, "/v1/endpoints/second-one") == 200  # nothing was undone


def test_sigusr1_is_logged_and_harmless(served: tuple[RunningGateway, Path]) -> None:
    gateway, _ = served
    key = gateway.key(E)
    results: list[int] = []
    thread = _in_flight(gateway, key, results)
    os.kill(gateway.started.proc.pid, signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1" in gateway.started.log(), timeout=30,
               what="SIGUSR1 to be logged")
    thread.join(60)
    assert results == [200]
    assert gateway.started.proc.poll() is None
    assert gateway.score(E, b"{}", key).status_code == 200

"""`scoregate serve --workers 2`: real worker processes sharing one port (docs/workers.md).

Each check opens fresh connections, so the kernel spreads them over both workers; /healthz
says which worker answered and the snapshot version it routes with."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.serve import WORKERS_ENV, add_arguments, options_from_args
from control_plane.workers import MAX_WORKERS
from tests.support.gateway import (
    RunningGateway,
    metric,
    metrics_text,
    start_serve,
    start_upstream,
)
from tests.support.processes import ProcessGroup, wait_until

ENDPOINT = "fleet"


def _yaml(folder: Path, upstreams: dict[str, str], traffic: dict[str, int],
          concurrency: int = 16) -> Path:
    folder.mkdir()
    lines = "".join(f"  {name}: {percent}\n" for name, percent in traffic.items())
    (folder / "endpoint.yml").write_text(f"name: {ENDPOINT}\nauth_mode: key\ntraffic:\n{lines}")
    for name, url in upstreams.items():
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {ENDPOINT}\nurls: ['{url}/score']\n"
            f"request_settings: {{max_concurrent_requests_per_instance: {concurrency}}}\n")
    return folder


def _serve(processes: ProcessGroup, tmp: Path, upstreams: dict[str, str],
           traffic: dict[str, int], concurrency: int = 16) -> RunningGateway:
    folder = _yaml(tmp / "yaml", upstreams, traffic, concurrency)
    return start_serve(processes, tmp / "home", str(folder), extra=("--workers", "2"))


def _health(gateway: RunningGateway) -> dict[str, Any]:
    """/healthz on a fresh connection (httpx.get opens one per call)."""
    return dict(httpx.get(gateway.scoring_url + "/healthz", timeout=10).json())


def _score_fresh(gateway: RunningGateway, key: str) -> httpx.Response:
    return gateway.score(ENDPOINT, b"{}", key)


def _admin_put_traffic(gateway: RunningGateway, traffic: dict[str, int]) -> int:
    token = (gateway.home / "admin_token").read_text().strip()
    answer = httpx.put(f"{gateway.admin_url}/v1/endpoints/{ENDPOINT}/traffic", json=traffic,
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    answer.raise_for_status()
    return int(answer.json()["snapshot_version"])


class _VersionWatch:
    """Polls /healthz on fresh connections in a thread; records each worker pid's versions."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.seen: dict[int, list[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _VersionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        for _ in range(5000):  # bounded; paced so the checks above get the CPU
            if self._stop.wait(0.02):
                return
            health = _health(self.gateway)
            self.seen.setdefault(int(health["pid"]), []).append(int(health["snapshot_version"]))


def test_two_workers_split_weighted_traffic_apply_changes_before_the_admin_answers_and_sum_metrics(
        processes: ProcessGroup, tmp_path: Path) -> None:
    upstreams = {name: start_upstream(processes, tmp_path, name) for name in ("blue", "green")}
    gateway = _serve(processes, tmp_path, upstreams, {"blue": 50, "green": 50})
    key = gateway.key(ENDPOINT)
    workers = Counter(_health(gateway)["worker"] for _ in range(40))
    assert set(workers) == {0, 1}, workers  # fresh connections reach both workers

    picked = Counter(_score_fresh(gateway, key).headers["x-backend"] for _ in range(60))
    assert set(picked) == {"blue", "green"} and min(picked.values()) >= 12, picked
    text = metrics_text(gateway.scoring_url)  # whichever worker answers: the fleet's sum
    assert metric(text, "scoregate_requests_total", endpoint=ENDPOINT, status_code="200") == 60

    with _VersionWatch(gateway) as watch:
        for only in ("green", "blue"):
            version = _admin_put_traffic(gateway, {"blue": 100 * (only == "blue"),
                                                   "green": 100 * (only == "green")})
            # in force on every worker as the admin call returned: no stale answer at all
            for _ in range(20):
                assert _health(gateway)["snapshot_version"] >= version
                assert _score_fresh(gateway, key).headers["x-backend"] == only
    assert len(watch.seen) == 2, watch.seen
    for pid, versions in watch.seen.items():
        assert versions == sorted(versions), (pid, versions)  # never backwards
    _the_admin_answers_only_once_every_worker_applied(gateway, version)


def _the_admin_answers_only_once_every_worker_applied(gateway: RunningGateway,
                                                       before: int) -> None:
    """A stopped worker (SIGSTOP) cannot acknowledge: the admin write waits for it (well
    within the 10 s after which a silent worker is given up on) while the other worker already
    routes with the new version, and answers once it runs again."""
    pids = _worker_pids(gateway)
    os.kill(pids[1], signal.SIGSTOP)
    answered: list[int] = []
    try:
        started = time.monotonic()
        writer = threading.Thread(target=lambda: answered.append(
            _admin_put_traffic(gateway, {"blue": 50, "green": 50})))
        writer.start()

        def worker_0_applied() -> bool:
            version = _version_of(gateway, pids[0])
            return version is not None and version > before

        wait_until(worker_0_applied, timeout=8, what="worker 0 to apply the change")
        assert not answered and time.monotonic() - started < 9  # still waiting for worker 1
    finally:
        os.kill(pids[1], signal.SIGCONT)
    writer.join(30)
    assert answered
    for _ in range(10):
        assert _health(gateway)["snapshot_version"] >= answered[0]


def _version_of(gateway: RunningGateway, pid: int) -> int | None:
    """The snapshot version worker `pid` routes with, when a fresh connection reached it (one
    the kernel hands to a stopped worker times out)."""
    try:
        health = httpx.get(gateway.scoring_url + "/healthz", timeout=0.3).json()
    except httpx.TransportError:
        return None
    return int(health["snapshot_version"]) if int(health["pid"]) == pid else None


def test_the_429_rule_counts_requests_in_flight_on_every_worker(
        processes: ProcessGroup, tmp_path: Path) -> None:
    slow = start_upstream(processes, tmp_path, "slow", delay=1.5)
    # one instance, max_concurrent_requests_per_instance 1: 2 in flight fleet-wide, no more
    gateway = _serve(processes, tmp_path, {"slow": slow}, {"slow": 100}, concurrency=1)
    key = gateway.key(ENDPOINT)
    with ThreadPoolExecutor(8) as pool:  # 8 connections, spread over both workers
        statuses = Counter(pool.map(lambda _: _score_fresh(gateway, key).status_code, range(8)))
    assert statuses == {200: 2, 429: 6}, statuses


def _worker_pids(gateway: RunningGateway) -> dict[int, int]:
    """Worker index → pid, from /healthz on fresh connections (both answer within a few)."""
    pids: dict[int, int] = {}

    def both() -> bool:
        health = _health(gateway)
        pids[int(health["worker"])] = int(health["pid"])
        return len(pids) == 2

    wait_until(both, timeout=30, what="both workers to answer")
    return pids


def _restarted(gateway: RunningGateway, index: int, old_pid: int) -> None:
    def new_pid() -> bool:
        health = _health(gateway)
        return int(health["worker"]) == index and int(health["pid"]) != old_pid

    wait_until(new_pid, timeout=30, what=f"worker {index} to be started again")


def test_a_worker_killed_with_sigkill_is_restarted_and_only_its_requests_fail(
        processes: ProcessGroup, tmp_path: Path) -> None:
    upstream = start_upstream(processes, tmp_path, "blue", delay=0.02)
    gateway = _serve(processes, tmp_path, {"blue": upstream}, {"blue": 100})
    key = gateway.key(ENDPOINT)
    pids = _worker_pids(gateway)

    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def client() -> None:
        for _ in range(400):  # bounded; one request in flight per client at a time
            if stop.is_set():
                return
            try:
                outcomes[str(_score_fresh(gateway, key).status_code)] += 1
            except httpx.TransportError:
                outcomes["connection error"] += 1

    clients = [threading.Thread(target=client) for _ in range(2)]
    for thread in clients:
        thread.start()
    try:
        wait_until(lambda: outcomes["200"] >= 20, timeout=30, what="load to run")
        os.kill(pids[0], signal.SIGKILL)
        _restarted(gateway, 0, pids[0])
        served_after = outcomes["200"]
        wait_until(lambda: outcomes["200"] >= served_after + 20, timeout=30,
                   what="load to go on after the restart")
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
    # at most the requests in flight in the killed worker: one per client
    assert outcomes["connection error"] <= len(clients), outcomes
    assert set(outcomes) <= {"200", "connection error"}, outcomes
    assert "data-plane worker 0" in gateway.started.log()

    # the fleet's counters survive a worker's death: what it had counted stays in the sum
    # (exactly, when it died right after a collection: this scrape; docs/workers.md)
    counted = metric(metrics_text(gateway.scoring_url), "scoregate_requests_total")
    os.kill(pids[1], signal.SIGKILL)
    _restarted(gateway, 1, pids[1])
    assert metric(metrics_text(gateway.scoring_url), "scoregate_requests_total") == counted


def test_mirror_copies_from_every_worker_are_compared_in_one_report(
        processes: ProcessGroup, tmp_path: Path) -> None:
    upstreams = {name: start_upstream(processes, tmp_path, name) for name in ("blue", "green")}
    gateway = _serve(processes, tmp_path, upstreams, {"blue": 100, "green": 0})
    token = (gateway.home / "admin_token").read_text().strip()
    admin = httpx.Client(base_url=f"{gateway.admin_url}/v1/endpoints/{ENDPOINT}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    with admin:
        admin.put("/mirror-traffic", json={"green": 50}).raise_for_status()
        key = gateway.key(ENDPOINT)
        served = Counter(_health(gateway)["worker"] for _ in range(20))
        assert set(served) == {0, 1}, served  # fresh connections reach both workers
        for _ in range(60):
            assert _score_fresh(gateway, key).headers["x-backend"] == "blue"

        def copies() -> int:
            stats = httpx.get(upstreams["green"] + "/stats", timeout=10).json()
            return int(stats["mirror"])

        def report() -> dict[str, Any]:
            return dict(admin.get("/deployments/green/compare").json())

        # blue and green answer differently: every compared copy is a mismatch, whichever
        # worker sent it, and the report (collected every second) counts them all
        wait_until(lambda: copies() > 0 and report()["compared"] == copies(), timeout=30,
                   what="the fleet's report to count every mirror copy")
        shown = report()
        assert shown["counts"]["mismatch"] == shown["compared"]
        assert shown["last_mismatches"], shown


def _workers_option(argv: list[str]) -> int | str:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    try:
        return options_from_args(parser.parse_args(argv)).workers
    except SystemExit as refused:
        return str(refused)


def test_workers_default_to_the_cores_capped_and_bad_counts_are_refused_clearly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV)
    assert 1 <= int(_workers_option([])) <= min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    assert _workers_option(["--workers", "0"]) == "error: --workers must be from 1 to 64, got 0"
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert _workers_option([]) == 3
    assert _workers_option(["--workers", "1"]) == 1  # the flag wins
    monkeypatch.setenv(WORKERS_ENV, "many")
    assert _workers_option([]) == "error: $SCOREGATE_WORKERS must be a whole number, got 'many'"


def test_startup_slack_is_an_option_and_bad_values_are_refused() -> None:
    """(Beside --workers: the other serve option whose parsing tests live here.)"""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from_args(parser.parse_args(["--workers", "1"])).startup_slack_s == 60
    chosen = options_from_args(parser.parse_args(["--workers", "1", "--startup-slack-s", "5"]))
    assert chosen.startup_slack_s == 5
    with pytest.raises(SystemExit, match="--startup-slack-s must be 0 to 86400, got -1"):
        options_from_args(parser.parse_args(["--workers", "1", "--startup-slack-s", "-1"]))

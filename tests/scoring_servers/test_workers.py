"""WORKER_COUNT threads run run() concurrently; SCORING_TIMEOUT_MS bounds the wait for it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.scoring_servers.server_helpers import ScoringServer, start_server, write_script
from tests.support.processes import ProcessGroup

SLEEPY = """
    import time

    def init():
        pass

    def run(raw_data):
        time.sleep(float(raw_data))
        return "slept"
"""
SLEEP_S = 0.4


def _elapsed(server: ScoringServer, parallel: int) -> float:
    """Wall time for `parallel` concurrent requests that each sleep SLEEP_S in run()."""
    with ThreadPoolExecutor(parallel) as pool:
        started = time.perf_counter()
        replies = list(pool.map(lambda _: server.score(str(SLEEP_S)), range(parallel)))
        elapsed = time.perf_counter() - started
    assert all(reply.body == b'"slept"' for reply in replies)
    return elapsed


def test_two_workers_run_two_sleeps_at_once_one_worker_does_not(
        processes: ProcessGroup, tmp_path: Path) -> None:
    one = start_server(processes, write_script(tmp_path / "one", SLEEPY), {"WORKER_COUNT": "1"})
    two = start_server(processes, write_script(tmp_path / "two", SLEEPY), {"WORKER_COUNT": "2"})
    single = min(_elapsed(two, 1) for _ in range(2))
    pair_on_two = min(_elapsed(two, 2) for _ in range(2))
    pair_on_one = min(_elapsed(one, 2) for _ in range(2))
    assert pair_on_two / single < 1.5, (single, pair_on_two)
    assert pair_on_one / single > 1.7, (single, pair_on_one)


def test_scoring_timeout_gives_500_and_the_server_keeps_answering(
        processes: ProcessGroup, code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, SLEEPY),
                          {"SCORING_TIMEOUT_MS": "200", "WORKER_COUNT": "2"})
    quick = server.score("0")
    slow = server.score("30")
    assert quick.status == 200
    assert slow.status == 500
    assert slow.json() == {"message": "Scoring timeout after 200 ms"}
    assert float(slow.headers["x-ms-run-fn-exec-ms"]) < 30_000
    assert server.request("GET", "/").body == b"Healthy"
    assert server.score("0").status == 200  # the second worker is free
    # The stuck run() must not keep the process alive after SIGTERM.
    assert processes.stop(server.started, timeout=20) == 0
    assert "1 run() call(s) still running" in server.started.log()

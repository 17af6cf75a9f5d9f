"""WORKER_COUNT threads run run() concurrently; SCORING_TIMEOUT_MS bounds the wait for it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.scoring_servers.server_helpers import ScoringServer, start_server, write_script
from tests.support.processes import ProcessGroup, wait_until

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
    assert slow.headers["x-ms-run-function-failed"] == "True"  # as azmlinfsrv's timeout answer
    assert server.request("GET", "/").body == b"Healthy"
    assert server.score("0").status == 200  # the second worker is free
    # The stuck run() must not keep the process alive after SIGTERM.
    assert processes.stop(server.started, timeout=20) == 0
    assert "1 run() call(s) still running" in server.started.log()


LOGGED_SLEEPY = """
    import logging
    import time

    def init():
        pass

    def run(raw_data):
        logging.info("run started: %s", raw_data)
        time.sleep(float(raw_data.split()[0]))
        return "slept"
"""


def test_a_request_that_times_out_while_queued_never_reaches_run(
        processes: ProcessGroup, code_dir: Path) -> None:
    server = start_server(processes, write_script(code_dir, LOGGED_SLEEPY),
                          {"SCORING_TIMEOUT_MS": "300", "WORKER_COUNT": "1"})
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(server.score, "1.5 first")
        wait_until(lambda: "run started: 1.5 first" in server.started.log(), 20,
                   what="the first run()")
        queued = pool.submit(server.score, "0 queued")
        assert queued.result().status == 500  # waited 300 ms behind the first, never started
        assert busy.result().status == 500
    # Once the first run() returned, the worker is free again (earlier tries time out queued).
    wait_until(lambda: server.score("0 after").body == b'"slept"', 20, what="a free worker")
    wait_until(lambda: "run started: 0 after" in server.started.log(), 20, what="the last run()")
    assert "run started: 0 queued" not in server.started.log()

"""Dynamic batching in the scoring-script server: `run_batch` scripts, SCOREGATE_BATCHING."""

from __future__ import annotations

import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scoring_servers.batching import BatchSettings, parse_batching
from tests.scoring_servers.server_helpers import Reply, ScoringServer, start_server, write_script
from tests.support.processes import ProcessGroup, wait_until

# run() doubles every number; run_batch() does the same per input, refuses a batch holding
# "poison" (run() then fails on that one request only), and returns one result too few for a
# batch holding "short".
BATCH_SCRIPT = """
    import json

    def init():
        pass

    def run(raw_data):
        rows = json.loads(raw_data)
        if rows == "poison":
            raise ValueError("poisoned input")
        if rows == "short":
            return "short, alone"
        return [[value * 2 for value in row] for row in rows]

    def run_batch(inputs):
        if '"poison"' in inputs:
            raise ValueError("a poisoned batch")
        results = [run(raw_data) for raw_data in inputs]
        return results[:-1] if '"short"' in inputs else results
"""
PLAIN_SCRIPT = """
    import json

    def init():
        pass

    def run(raw_data):
        return [[value * 2 for value in row] for row in json.loads(raw_data)]
"""
LONG_WAIT = "1000"  # the batch closes by size in these tests, long before this


def _rows(index: int) -> str:
    """Requests of 1 to 5 rows with distinct values."""
    return json.dumps([[index, index + 0.5, -index] for _ in range(index % 5 + 1)])


def _concurrently(server: ScoringServer, bodies: list[str], parallel: int) -> list[Reply]:
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(server.score, bodies))


def _batching(size: int, latency_ms: str) -> dict[str, str]:
    return {"SCOREGATE_BATCHING": f"{size},{latency_ms}", "WORKER_COUNT": "2"}


def test_parse_batching_reads_size_and_latency_and_refuses_anything_else() -> None:
    assert parse_batching({}) is None
    assert parse_batching({"SCOREGATE_BATCHING": " "}) is None
    assert parse_batching({"SCOREGATE_BATCHING": "32, 10"}) == BatchSettings(32, 0.010)
    for bad in ("32", "32,10,1", "a,10", "-1,10", "0,10", "1025,10", "32,0", "32,1001", "3.5,1"):
        with pytest.raises(ValueError, match="SCOREGATE_BATCHING"):
            parse_batching({"SCOREGATE_BATCHING": bad})


def test_batched_answers_equal_unbatched_ones_under_concurrent_load(
        processes: ProcessGroup, tmp_path: Path) -> None:
    code = write_script(tmp_path / "code", BATCH_SCRIPT)
    batched = start_server(processes, code, _batching(8, "20"))
    unbatched = start_server(processes, code, {"WORKER_COUNT": "2"})
    bodies = [_rows(index) for index in range(96)]
    with_batches = _concurrently(batched, bodies, 16)
    alone = _concurrently(unbatched, bodies, 16)
    assert [reply.status for reply in with_batches] == [200] * len(bodies)
    assert [reply.body for reply in with_batches] == [reply.body for reply in alone]
    sizes = [int(reply.headers["x-scoregate-batch-size"]) for reply in with_batches]
    assert max(sizes) > 1 and all(1 <= size <= 8 for size in sizes)
    assert all("x-scoregate-batch-size" not in reply.headers for reply in alone)
    assert all(reply.headers["x-ms-run-function-failed"] == "False" for reply in with_batches)


def test_a_full_batch_closes_by_size_and_is_one_run_batch_call(
        processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path, BATCH_SCRIPT), _batching(4, LONG_WAIT))
    replies = _concurrently(server, [_rows(index) for index in range(4)], 4)
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["4"] * 4
    assert all(float(reply.headers["x-scoregate-batch-wait-ms"]) < float(LONG_WAIT)
               for reply in replies)
    assert [reply.json() for reply in replies] == [
        [[value * 2 for value in row] for row in json.loads(_rows(index))] for index in range(4)]


def test_a_poisoned_request_fails_alone(processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path, BATCH_SCRIPT), _batching(4, LONG_WAIT))
    bodies = [_rows(1), '"poison"', _rows(2), _rows(3)]
    replies = _concurrently(server, bodies, 4)
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["4"] * 4
    assert [reply.status for reply in replies] == [200, 500, 200, 200]
    assert replies[1].headers["x-ms-run-function-failed"] == "True"
    assert replies[0].json() == [[value * 2 for value in row] for row in json.loads(_rows(1))]
    wait_until(lambda: "run_batch() raised on a batch of 4" in server.started.log(),
               what="the run_batch failure in the log")


def test_a_wrong_length_result_falls_back_to_run_per_request(
        processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path, BATCH_SCRIPT), _batching(3, LONG_WAIT))
    replies = _concurrently(server, [_rows(1), '"short"', _rows(2)], 3)
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert replies[1].json() == "short, alone"
    assert replies[2].json() == [[value * 2 for value in row] for row in json.loads(_rows(2))]
    wait_until(lambda: "run_batch() returned 2 results for a batch of 3" in server.started.log(),
               what="the wrong length in the log")


def test_a_lone_request_waits_no_longer_than_the_latency_bound(
        processes: ProcessGroup, tmp_path: Path) -> None:
    bound_ms = 50.0
    server = start_server(processes, write_script(tmp_path, BATCH_SCRIPT),
                          _batching(32, str(int(bound_ms))))
    replies = [server.score(_rows(1)) for _ in range(7)]
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["1"] * 7
    waits = [float(reply.headers["x-scoregate-batch-wait-ms"]) for reply in replies]
    # The batch closes on a loop timer: never early, late only by the loop's scheduling.
    assert min(waits) >= bound_ms * 0.9, waits
    assert statistics.median(waits) <= bound_ms + 20.0, waits


SLOW_BATCH_SCRIPT = """
    import time

    def init():
        pass

    def run(raw_data):
        return raw_data

    def run_batch(inputs):
        time.sleep(float(inputs[0]))
        return inputs
"""


def test_scoring_timeout_counts_the_batch_and_the_server_keeps_answering(
        processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path, SLOW_BATCH_SCRIPT),
                          {**_batching(2, "10"), "SCORING_TIMEOUT_MS": "300"})
    slow = server.score("5")
    assert slow.status == 500
    assert slow.json() == {"message": "Scoring timeout after 300 ms"}
    assert slow.headers["x-scoregate-batch-size"] == "1"
    quick = server.score("0")  # the second worker is free
    assert (quick.status, quick.json()) == (200, "0")


def test_scripts_without_run_batch_are_never_batched(
        processes: ProcessGroup, tmp_path: Path) -> None:
    server = start_server(processes, write_script(tmp_path, PLAIN_SCRIPT), _batching(4, "50"))
    replies = _concurrently(server, [_rows(index) for index in range(8)], 4)
    assert [reply.status for reply in replies] == [200] * 8
    assert all("x-scoregate-batch-size" not in reply.headers for reply in replies)
    assert "defines no run_batch(): each request is scored alone" in server.started.log()


def test_a_bad_batching_variable_stops_the_server_with_exit_code_2(
        processes: ProcessGroup, tmp_path: Path) -> None:
    code = write_script(tmp_path, PLAIN_SCRIPT)
    started = processes.python("-m", "scoring_servers.azureml", "--code", str(code), "--entry",
                               "score.py", "--port", "0", env={"SCOREGATE_BATCHING": "32"})
    assert started.proc.wait(timeout=60) == 2
    assert "SCOREGATE_BATCHING must be <max_batch_size>,<max_latency_ms>" in started.log()

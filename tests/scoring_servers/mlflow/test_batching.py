"""Native batching of MLflow models (SCOREGATE_BATCHING): stacked rows, one predict, each
client its own rows; anything that cannot be stacked, or a stack that fails, scored alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.scoring_servers.mlflow.batch_models import POISON, save_call_probe_model
from tests.scoring_servers.mlflow.conftest import start_mlflow_server
from tests.scoring_servers.mlflow.models import COLUMNS
from tests.scoring_servers.server_helpers import Reply, ScoringServer
from tests.support.processes import ProcessGroup, wait_until

LONG_WAIT = "1000"  # these batches close by size, long before this
ServerAndModel = tuple[ScoringServer, Path]


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_call_probe_model(tmp_path_factory.mktemp("probe") / "model")


@pytest.fixture(scope="module")
def probe_by_fours(probe_model: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringServer]:
    """The probe model batched by 4 (closing by size): each test sends exactly 4 requests at
    once, so the tests sharing it each get their own batch."""
    with ProcessGroup(tmp_path_factory.mktemp("probe-logs")) as group:
        yield start_mlflow_server(group, probe_model, _batching(4, LONG_WAIT))


def _concurrently(server: ScoringServer, documents: list[Any], parallel: int) -> list[Reply]:
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda document: server.score(json.dumps(document)), documents))


def _batching(size: int, latency_ms: str) -> dict[str, str]:
    return {"SCOREGATE_BATCHING": f"{size},{latency_ms}", "WORKER_COUNT": "2"}


def _mixed_request(index: int) -> Any:
    """1 to 4 rows, in the formats and shapes clients send (several must never be stacked
    with the others: records, ints, another column order, params-free tensors are fine)."""
    rng = np.random.default_rng(index)
    rows = np.round(rng.normal(size=(index % 4 + 1, len(COLUMNS))), 6).tolist()
    kind = index % 6
    if kind == 0:
        return {"input_data": {"columns": COLUMNS, "data": rows}}
    if kind == 1:
        return {"input_data": {"columns": COLUMNS, "index": list(range(7, 7 + len(rows))),
                               "data": rows}}
    if kind == 2:
        return {"dataframe_split": {"columns": COLUMNS, "data": rows}}
    if kind == 3:
        return {"dataframe_records": [dict(zip(COLUMNS, row, strict=True)) for row in rows]}
    if kind == 4:
        return {"input_data": {"columns": COLUMNS, "data": [[int(v * 10) for v in row]
                                                             for row in rows]}}
    return {"input_data": {"columns": COLUMNS[::-1], "data": [row[::-1] for row in rows]}}


def test_batched_answers_equal_unbatched_ones_under_concurrent_load(
        processes: ProcessGroup, sklearn_server: ServerAndModel) -> None:
    unbatched, model = sklearn_server  # the session's unbatched server of this model
    batched = start_mlflow_server(processes, model, _batching(8, "20"))
    documents = [_mixed_request(index) for index in range(96)]
    with_batches = _concurrently(batched, documents, 16)
    alone = _concurrently(unbatched, documents, 16)
    assert [reply.status for reply in alone] == [200] * len(documents)
    assert [reply.status for reply in with_batches] == [200] * len(documents)
    assert [reply.body for reply in with_batches] == [reply.body for reply in alone]
    sizes = [int(reply.headers["x-scoregate-batch-size"]) for reply in with_batches]
    assert max(sizes) > 1 and all(1 <= size <= 8 for size in sizes)
    assert all("x-scoregate-batch-size" not in reply.headers for reply in alone)


def test_tensors_are_stacked_and_split_back(processes: ProcessGroup,
                                           tensor_server: ServerAndModel) -> None:
    unbatched, model = tensor_server
    batched = start_mlflow_server(processes, model, _batching(4, LONG_WAIT))
    documents = [{"input_data": [[index, 1.5, -index]] * (index + 1)} for index in range(4)]
    replies = _concurrently(batched, documents, 4)
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["4"] * 4
    assert [reply.body for reply in replies] == [
        unbatched.score(json.dumps(document)).body for document in documents]


def test_one_predict_per_batch_and_each_client_gets_its_own_rows(
        probe_by_fours: ScoringServer) -> None:
    server = probe_by_fours
    documents = [{"input_data": {"columns": ["a", "b"],
                                 "data": [[index, row] for row in range(index + 1)]}}
                 for index in range(4)]  # 1 + 2 + 3 + 4 rows
    replies = _concurrently(server, documents, 4)
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["4"] * 4
    for index, reply in enumerate(replies):
        assert reply.json() == [{"total": float(index + row), "rows_in_call": 10}
                                for row in range(index + 1)]


def test_a_poisoned_request_fails_alone(probe_by_fours: ScoringServer) -> None:
    server = probe_by_fours
    documents = [{"input_data": {"columns": ["a", "b"], "data": [[index, 1.0], [index, 2.0]]}}
                 for index in range(4)]
    documents[2] = {"input_data": {"columns": ["a", "b"], "data": [[1.0, 1.0], [POISON, 1.0]]}}
    replies = _concurrently(server, documents, 4)
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["4"] * 4
    assert [reply.status for reply in replies] == [200, 200, 400, 200]
    assert "unexpected error while evaluating the model" in replies[2].json()["message"]
    for index in (0, 1, 3):  # predicted alone after the stacked call failed: 2 rows per call
        assert replies[index].json() == [{"total": index + 1.0, "rows_in_call": 2},
                                         {"total": index + 2.0, "rows_in_call": 2}]
    wait_until(lambda: "predicting a batch of 4 requests failed" in server.started.log(),
               what="the fallback in the log")


def test_a_bad_body_fails_alone_and_the_others_are_stacked(
        processes: ProcessGroup, probe_model: Path) -> None:
    server = start_mlflow_server(processes, probe_model, _batching(3, LONG_WAIT))
    documents: list[Any] = [{"input_data": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}},
                            {"unknown": 1},
                            {"input_data": {"columns": ["a", "b"], "data": [[3.0, 4.0]]}}]
    replies = _concurrently(server, documents, 3)
    assert [reply.status for reply in replies] == [200, 400, 200]
    assert replies[0].json() == [{"total": 3.0, "rows_in_call": 2}]
    assert replies[2].json() == [{"total": 7.0, "rows_in_call": 2}]


def test_a_lone_request_waits_no_longer_than_the_latency_bound(
        processes: ProcessGroup, probe_model: Path) -> None:
    bound_ms = 40.0
    server = start_mlflow_server(processes, probe_model, _batching(32, str(int(bound_ms))))
    document = json.dumps({"input_data": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
    replies = [server.score(document) for _ in range(7)]
    assert [reply.headers["x-scoregate-batch-size"] for reply in replies] == ["1"] * 7
    assert all(reply.json() == [{"total": 3.0, "rows_in_call": 1}] for reply in replies)
    waits = sorted(float(reply.headers["x-scoregate-batch-wait-ms"]) for reply in replies)
    assert waits[0] >= bound_ms * 0.9, waits  # closed by the timer, never early
    assert waits[len(waits) // 2] <= bound_ms + 20.0, waits  # late only by the loop's scheduling

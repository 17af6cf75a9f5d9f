"""A client's mistake is a 4xx with JSON `{"message": ...}`, never a 500 and never a traceback;
a payload that does not fit the signature gets MLflow's own enforcement message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import infer_and_parse_data

from tests.scoring_servers.mlflow.models import COLUMNS, input_schema, pyfunc_predict
from tests.scoring_servers.server_helpers import Reply, ScoringServer

ServerAndModel = tuple[ScoringServer, Path]


def message_of(reply: Reply, status: int = 400) -> str:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    document = reply.json()
    assert list(document) == ["message"]
    assert "Traceback" not in document["message"]
    return str(document["message"])


def test_missing_column_gets_mlflows_enforcement_message(sklearn_server: ServerAndModel) -> None:
    server, model_dir = sklearn_server
    partial = pd.DataFrame([[1.0, 2.0]], columns=COLUMNS[:2])
    with pytest.raises(MlflowException) as raised:
        pyfunc_predict(model_dir, partial)
    split = {"columns": COLUMNS[:2], "index": [0], "data": [[1.0, 2.0]]}
    message = message_of(server.score(json.dumps({"input_data": split})))
    assert message == raised.value.message
    assert "Model is missing inputs ['bp']" in message


def test_wrong_column_type_gets_mlflows_message(sklearn_server: ServerAndModel) -> None:
    server, model_dir = sklearn_server
    split = {"columns": COLUMNS, "index": [0], "data": [["old", 2.0, 3.0]]}
    with pytest.raises(MlflowException) as raised:
        infer_and_parse_data({"dataframe_split": split}, input_schema(model_dir))
    for key in ("input_data", "dataframe_split"):
        message = message_of(server.score(json.dumps({key: split})))
        assert message == f"{key}: {raised.value.message}"


def test_bad_param_type_gets_mlflows_message(named_tensor_server: ServerAndModel) -> None:
    server, _ = named_tensor_server
    document = {"input_data": {"x": [[1.0, 2.0]], "y": [[1.0, 2.0]]}, "params": {"scale": "big"}}
    message = message_of(server.score(json.dumps(document)))
    assert "scale" in message and "big" in message


@pytest.mark.parametrize(("body", "expected"), [
    (b"{not json", "The request body is not valid JSON"),
    (b"", "The request body is not valid JSON"),
    (b"\xff\xfe{}", "The request body is not"),
    (b"[[1, 2, 3]]", "must be a JSON object with exactly one of the keys input_data"),
    (b'"text"', "got a string"),
    (b'{"data": [[1, 2, 3]]}', "Unknown key(s) 'data'"),
    (b'{"input_data": [[1, 2, 3]], "extra": 1}', "Unknown key(s) 'extra'"),
    (b'{"input_data": [[1]], "inputs": [[1]]}', "found input_data, inputs"),
    (b'{"params": {}}', "found none"),
    (b'{"input_data": [[1, 2, 3]], "params": [1]}', "params must be a JSON object, got an array"),
    (b'{"dataframe_split": [[1, 2, 3]]}', "Dataframe split format must be a dictionary"),
    (b'{"dataframe_records": {"age": 1}}', "records format must be a list of records"),
    (b'{"input_data": {"columns": ["age", "bmi", "bp"], "data": [[1, 2], [3]]}}',
     "input_data"),
    (b'{"input_data": null}', "input_data is null"),
], ids=["bad-json", "empty", "not-utf8", "a-list", "a-string", "unknown-key", "extra-key",
        "two-formats", "no-format", "params-array", "split-not-object", "records-not-list",
        "ragged-rows", "null"])
def test_malformed_requests_get_400(sklearn_server: ServerAndModel, body: bytes,
                                    expected: str) -> None:
    server, _ = sklearn_server
    assert expected in message_of(server.score(body))


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/score", 405), ("PUT", "/score", 405), ("POST", "/", 405), ("GET", "/nope", 404),
])
def test_wrong_routes(sklearn_server: ServerAndModel, method: str, path: str, status: int) -> None:
    server, _ = sklearn_server
    body: Any = b"{}" if method in ("POST", "PUT") else None
    message_of(server.request(method, path, body), status)


def test_the_server_still_scores_after_errors(sklearn_server: ServerAndModel) -> None:
    server, _ = sklearn_server
    reply = server.score(json.dumps({"inputs": {name: [1.0] for name in COLUMNS}}))
    assert reply.status == 200 and len(reply.json()["predictions"]) == 1

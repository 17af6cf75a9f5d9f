"""Every request format gives exactly what `mlflow.pyfunc.load_model(path).predict` gives.

Azure's formats (`input_data`) answer the bare predictions, as Azure's no-code deployment does;
MLflow's (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) answer
`{"predictions": ...}`, as `mlflow models serve` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from tests.scoring_servers.mlflow.models import COLUMNS, pyfunc_predict
from tests.scoring_servers.server_helpers import ScoringServer

ROWS = [[0.5, -1.25, 2.0], [10.0, 3.5, -7.75], [0.0, 0.0, 0.0]]
FRAME = pd.DataFrame(ROWS, columns=COLUMNS)
SPLIT = {"columns": COLUMNS, "index": [0, 1, 2], "data": ROWS}
RECORDS = FRAME.to_dict(orient="records")
COLUMNAR = {name: FRAME[name].tolist() for name in COLUMNS}

ServerAndModel = tuple[ScoringServer, Path]


def post(server: ScoringServer, document: Any) -> Any:
    reply = server.score(json.dumps(document))
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    return reply.json()


@pytest.mark.parametrize("document", [
    {"input_data": SPLIT},
    {"input_data": {"columns": COLUMNS, "data": ROWS}},  # index is optional
], ids=["split", "split-without-index"])
def test_azure_split_answers_the_bare_predictions(sklearn_server: ServerAndModel,
                                                  document: Any) -> None:
    server, model_dir = sklearn_server
    assert post(server, document) == pyfunc_predict(model_dir, FRAME).tolist()


@pytest.mark.parametrize("document", [
    {"dataframe_split": SPLIT},
    {"dataframe_records": RECORDS},
    {"instances": RECORDS},
    {"inputs": COLUMNAR},
], ids=["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_mlflow_formats_answer_predictions_wrapped(sklearn_server: ServerAndModel,
                                                   document: Any) -> None:
    server, model_dir = sklearn_server
    assert post(server, document) == {"predictions": pyfunc_predict(model_dir, FRAME).tolist()}


def test_the_azure_docs_sample_request_shape_is_scored(sklearn_server: ServerAndModel) -> None:
    server, model_dir = sklearn_server
    one_row = {"input_data": {"columns": COLUMNS, "index": [1], "data": [[1, 2, 3]]}}
    expected = pyfunc_predict(model_dir, pd.DataFrame([[1.0, 2.0, 3.0]], columns=COLUMNS))
    assert post(server, one_row) == expected.tolist()


@pytest.mark.parametrize("key", ["input_data", "inputs", "instances"])
def test_tensor_input(tensor_server: ServerAndModel, key: str) -> None:
    server, model_dir = tensor_server
    expected = pyfunc_predict(model_dir, np.array(ROWS)).tolist()
    answer = post(server, {key: ROWS})
    assert answer == (expected if key == "input_data" else {"predictions": expected})


def test_named_tensors_and_params(named_tensor_server: ServerAndModel) -> None:
    server, model_dir = named_tensor_server
    tensors = {"x": [[1.0, 2.0], [3.0, 4.0]], "y": [[0.5, 0.5], [1.0, -1.0]]}
    arrays = {name: np.array(value) for name, value in tensors.items()}
    assert post(server, {"input_data": tensors}) == pyfunc_predict(model_dir, arrays).tolist()
    scaled = pyfunc_predict(model_dir, arrays, {"scale": 3.0}).tolist()
    assert post(server, {"input_data": tensors, "params": {"scale": 3.0}}) == scaled
    assert post(server, {"inputs": tensors, "params": {"scale": 3.0}}) == {"predictions": scaled}


def test_dataframe_output_is_answered_as_records(frame_server: ServerAndModel) -> None:
    server, model_dir = frame_server
    frame = pd.DataFrame({"a": [1.0, 2.5], "b": [0.25, -4.0]})
    split = json.loads(frame.to_json(orient="split"))
    expected = pyfunc_predict(model_dir, frame, {"scale": 2.0}).to_dict(orient="records")
    assert expected == [{"total": 1.25, "scaled": 2.0}, {"total": -1.5, "scaled": 5.0}]
    assert post(server, {"input_data": split, "params": {"scale": 2.0}}) == expected
    assert post(server, {"dataframe_split": split, "params": {"scale": 2.0}}) == {
        "predictions": expected}


def test_answers_carry_request_ids_and_the_scoring_time(sklearn_server: ServerAndModel) -> None:
    server, _ = sklearn_server
    body = json.dumps({"input_data": SPLIT})
    mine = server.score(body, {"x-request-id": "my-id-1", "x-ms-client-request-id": "client-7"})
    assert mine.headers["x-request-id"] == "my-id-1"
    assert mine.headers["x-ms-client-request-id"] == "client-7"
    assert float(mine.headers["x-ms-run-fn-exec-ms"]) > 0
    fresh = server.score(body)
    assert len(fresh.headers["x-request-id"]) == 36 and fresh.headers["x-request-id"][14] == "4"

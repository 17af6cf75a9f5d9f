"""`GET /swagger.json`: valid OpenAPI 2 / 3 / 3.1, built from the signature and input example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.scoring_servers.mlflow.models import COLUMNS, training_frame
from tests.scoring_servers.server_helpers import ScoringServer

ServerAndModel = tuple[ScoringServer, Path]


@pytest.mark.parametrize("version", [None, "2", "3", "3.1"])
def test_documents_are_valid(sklearn_server: ServerAndModel, version: str | None) -> None:
    server, _ = sklearn_server
    query = f"?version={version}" if version else ""
    reply = server.request("GET", "/swagger.json" + query)
    assert reply.status == 200
    validate(reply.json())


def test_the_example_is_the_models_input_example(sklearn_server: ServerAndModel) -> None:
    server, _ = sklearn_server
    document = server.request("GET", "/swagger.json?version=3").json()
    schema = document["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]
    example = schema["example"]["input_data"]
    assert example["columns"] == COLUMNS
    assert example["data"] == training_frame().head(2).to_numpy().tolist()
    assert schema["properties"]["input_data"]["properties"]["columns"]["example"] == COLUMNS
    # the example is itself a request the server scores
    assert server.score(json.dumps(schema["example"])).status == 200


def test_params_are_described(named_tensor_server: ServerAndModel) -> None:
    server, _ = named_tensor_server
    document = server.request("GET", "/swagger.json?version=2").json()
    validate(document)
    body = document["paths"]["/score"]["post"]["parameters"][0]["schema"]
    assert body["properties"]["params"]["properties"]["scale"] == {
        "type": "number", "format": "double", "default": 1.0}
    assert set(body["properties"]["input_data"]["properties"]) == {"x", "y"}


def test_unknown_version_is_404(sklearn_server: ServerAndModel) -> None:
    server, _ = sklearn_server
    reply = server.request("GET", "/swagger.json?version=9")
    assert reply.status == 404 and "not valid" in reply.json()["message"]

"""`GET /swagger.json?version=2|3|3.1`, generated once at start from the model's signature and
input example, as Azure ML generates it for a no-code MLflow deployment: the request is
`{"input_data": ..., "params": ...}` (the Azure format; the MLflow formats are accepted but not
described), the example is the model's saved input example, else one row built from the
signature. A model without a signature gets free-form JSON in and out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from mlflow.models.signature import ModelSignature
from mlflow.types import DataType, Schema
from mlflow.utils.proto_json_utils import NumpyEncoder

VERSIONS: Mapping[str, str] = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
DEFAULT_VERSION = "2"

_JSON_TYPES: Mapping[str, dict[str, Any]] = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
}
_SAMPLES: Mapping[str, Any] = {"boolean": True, "integer": 0, "long": 0, "float": 0.0,
                               "double": 0.0, "string": "sample string", "binary": "",
                               "datetime": "2024-01-01T00:00:00"}


@dataclass(frozen=True)
class SwaggerDocuments:
    """Serialised documents by canonical version."""

    documents: Mapping[str, bytes]

    def get(self, version: str | None) -> bytes | None:
        """The document for a `?version=` value, or None when the version is unknown."""
        canonical = VERSIONS.get(version or DEFAULT_VERSION)
        return None if canonical is None else self.documents[canonical]


def build_swagger(title: str, signature: ModelSignature | None,
                  input_example: Any) -> SwaggerDocuments:
    request, response = _request_schema(signature, input_example), _response_schema(signature)
    return SwaggerDocuments({version: json.dumps(document(version, title, request, response),
                                                 cls=NumpyEncoder).encode()
                             for version in ("2", "3", "3.1")})


def document(version: str, title: str, request: dict[str, Any],
             response: dict[str, Any]) -> dict[str, Any]:
    info = {"title": title, "version": "1.0",
            "description": "MLflow model served by scoregate (no-code deployment)"}
    health = {"operationId": "ServiceHealthCheck",
              "description": "Answers Healthy once the model is loaded."}
    score = {"operationId": "RunMLService", "description": "The model's predictions."}
    error = {"type": "object", "properties": {"message": {"type": "string"}}}
    if version == "2":
        return {
            "swagger": "2.0", "info": info, "schemes": ["http"],
            "consumes": ["application/json"], "produces": ["application/json"],
            "paths": {
                "/": {"get": {**health, "responses": {"200": {"description": "Healthy"}}}},
                "/score": {"post": {
                    **score,
                    "parameters": [{"name": "body", "in": "body", "required": True,
                                    "schema": request}],
                    "responses": {
                        "200": {"description": "predictions", "schema": response},
                        "400": {"description": "the input does not fit the model",
                                "schema": error}},
                }},
            },
        }
    return {
        "openapi": "3.1.0" if version == "3.1" else "3.0.3", "info": info,
        "paths": {
            "/": {"get": {**health, "responses": {"200": {
                "description": "Healthy",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/score": {"post": {
                **score,
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": {"description": "predictions",
                            "content": {"application/json": {"schema": response}}},
                    "400": {"description": "the input does not fit the model",
                            "content": {"application/json": {"schema": error}}}},
            }},
        },
    }


def _request_schema(signature: ModelSignature | None, input_example: Any) -> dict[str, Any]:
    if signature is None or signature.inputs is None:
        data: dict[str, Any] = {"type": "object"}
        example = _example_value(input_example)
    elif signature.inputs.is_tensor_spec():
        data = _tensor_schema(signature.inputs)
        example = _example_value(input_example)
    else:
        data = _split_schema(signature.inputs)
        example = _example_value(input_example) if input_example is not None \
            else _sample_split(signature.inputs)
    properties: dict[str, Any] = {"input_data": data}
    if signature is not None and signature.params is not None:
        properties["params"] = _params_schema(signature)
    schema: dict[str, Any] = {"type": "object", "required": ["input_data"],
                              "properties": properties}
    if example is not None:
        schema["example"] = {"input_data": example}
    return schema


def _response_schema(signature: ModelSignature | None) -> dict[str, Any]:
    if signature is None or signature.outputs is None:
        return {"type": "array", "items": {}}
    outputs = signature.outputs
    if outputs.is_tensor_spec():
        return {"type": "array", "items": {}}
    columns = outputs.inputs
    if len(columns) == 1:
        return {"type": "array", "items": _type_schema(columns[0].type)}
    return {"type": "array", "items": {}}


def _split_schema(schema: Schema) -> dict[str, Any]:
    names = [spec.name for spec in schema.inputs if spec.name is not None]
    columns: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if names:
        columns["example"] = names
    return {"type": "object", "required": ["data"], "properties": {
        "columns": columns,
        "index": {"type": "array", "items": {"type": "integer"}},
        "data": {"type": "array", "items": {"type": "array", "items": {}}},
    }}


def _sample_split(schema: Schema) -> dict[str, Any]:
    row = [_SAMPLES.get(str(spec.type), None) for spec in schema.inputs]
    names = [spec.name for spec in schema.inputs]
    sample: dict[str, Any] = {"index": [0], "data": [row]}
    if all(name is not None for name in names):
        sample = {"columns": names, **sample}
    return sample


def _tensor_schema(schema: Schema) -> dict[str, Any]:
    if schema.has_input_names():
        return {"type": "object", "properties": {
            str(spec.name): {"type": "array", "items": {}} for spec in schema.inputs}}
    return {"type": "array", "items": {}}


def _params_schema(signature: ModelSignature) -> dict[str, Any]:
    properties = {}
    for param in signature.params.params if signature.params is not None else []:
        prop = dict(_type_schema(param.dtype))
        if param.shape is not None:
            prop = {"type": "array", "items": prop}
        if param.default is not None:
            prop["default"] = param.default
        properties[param.name] = prop
    return {"type": "object", "properties": properties}


def _type_schema(data_type: Any) -> dict[str, Any]:
    name = data_type.name if isinstance(data_type, DataType) else str(data_type)
    return dict(_JSON_TYPES.get(name, {}))


def _example_value(example: Any) -> Any:
    """The input example in the request's own form (a DataFrame in split orientation)."""
    if example is None:
        return None
    if isinstance(example, pd.DataFrame):
        split = example.to_dict(orient="split")  # full precision; to_json keeps 10 digits
        return {"columns": split["columns"], "index": split["index"], "data": split["data"]}
    if isinstance(example, np.ndarray):
        return example.tolist()
    if isinstance(example, dict):
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in example.items()}
    return example

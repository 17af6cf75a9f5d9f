"""A request body → the model's input, in the formats Azure ML and MLflow document.

Azure ML (no-code deployment of an MLflow model), under the key `input_data`:
- pandas split: `{"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}`;
- a tensor: `{"input_data": [[...], ...]}`; named tensors: `{"input_data": {"name": [...]}}`.
MLflow's own server (2.x): `dataframe_split`, `dataframe_records`, `instances`, `inputs`.
Either may carry `params` (a JSON object) for models whose signature declares them.

The parsing itself is MLflow's (`infer_and_parse_data`, schema-aware: it casts columns to the
signature's types; `numeric_frames` builds the same frame faster for plain numbers and double
columns), so a request means here exactly what it means to `mlflow models serve`:
`input_data` in split form is read as `dataframe_split`, otherwise as `inputs` (Azure documents
them as the same payloads under another key). Everything wrong with a body is a `ClientError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from mlflow.types import Schema

from scoring_servers.mlflow.errors import ClientError
from scoring_servers.mlflow.numeric_frames import SPLIT_KEYS, numeric_split_rows

AZURE_KEY = "input_data"
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
FORMAT_KEYS = (AZURE_KEY, *MLFLOW_KEYS)
PARAMS_KEY = "params"
_EXPECTED = (f"a JSON object with exactly one of the keys {', '.join(FORMAT_KEYS)} "
             f"(and optionally {PARAMS_KEY})")


@dataclass(frozen=True)  # no slots=True: Python 3.10+
class ScoringRequest:
    data: Any  # what `predict` takes: a DataFrame, an ndarray, a dict of ndarrays, ...
    # (or NumericRows, when parsed for batching)
    params: dict[str, Any] | None
    mlflow_format: bool  # answered `{"predictions": ...}` as MLflow's server does


def parse_request(body: bytes, schema: Schema | None, hinted: bool = False,
                  double_columns: list[str] | None = None,
                  rows: bool = False) -> ScoringRequest:
    """`hinted`: a signature from type hints, where MLflow hands `inputs` over unparsed.
    `double_columns`: the signature's columns when all are doubles (`numeric_frames`).
    `rows`: leave a numeric split request as `NumericRows` (batching builds the frame)."""
    document = _decode(body)
    key = _format_key(document)
    params = document.get(PARAMS_KEY)
    if params is not None and not isinstance(params, dict):
        raise ClientError(f"{PARAMS_KEY} must be a JSON object, got {_json_type(params)}")
    value = document[key]
    if value is None:
        raise ClientError(f"{key} is null: it must hold the model's input")
    data = value if hinted else _parse_data(key, value, schema, double_columns, rows)
    return ScoringRequest(data, params, mlflow_format=key != AZURE_KEY)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise ClientError(f"The request body is not UTF-8: {exc}") from None
    except ValueError as exc:
        raise ClientError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ClientError(f"The request body must be {_EXPECTED}; got {_json_type(document)}")
    return document


def _format_key(document: dict[str, Any]) -> str:
    unknown = [key for key in document if key not in FORMAT_KEYS and key != PARAMS_KEY]
    if unknown:
        raise ClientError(f"Unknown key(s) {', '.join(map(repr, unknown))}: "
                          f"the request body must be {_EXPECTED}")
    present = [key for key in FORMAT_KEYS if key in document]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else "found none"
        raise ClientError(f"The request body must be {_EXPECTED}; {found}")
    return present[0]


def _parse_data(key: str, value: Any, schema: Schema | None,
                double_columns: list[str] | None, rows: bool) -> Any:
    mlflow_key = key
    if key == AZURE_KEY:
        mlflow_key = "dataframe_split" if is_split(value) else "inputs"
    if mlflow_key == "dataframe_split" and double_columns is not None:
        numeric = numeric_split_rows(value, double_columns)
        if numeric is not None:
            return numeric if rows else numeric.frame()
    try:
        return infer_and_parse_data({mlflow_key: value}, schema)  # type: ignore[arg-type]
    except MlflowException as exc:
        raise ClientError(f"{key}: {exc.message}") from None
    except Exception as exc:  # pandas' own errors for shapes MLflow does not check first
        raise ClientError(f"{key} cannot be read as {_described(mlflow_key)}: {exc}") from None


def is_split(value: Any) -> bool:
    """A pandas split-oriented frame, as Azure sends it (`columns` and `data`, maybe `index`);
    any other object is a set of named tensors."""
    return (isinstance(value, dict) and "data" in value and "columns" in value
            and value.keys() <= SPLIT_KEYS)


def _described(mlflow_key: str) -> str:
    return {"dataframe_split": "a pandas DataFrame in split orientation",
            "dataframe_records": "a pandas DataFrame in records orientation"}.get(
        mlflow_key, "a tensor or named tensors")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)

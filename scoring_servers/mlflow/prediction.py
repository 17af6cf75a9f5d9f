"""The one call into the model, and its answer as JSON.

`predict` takes one request's input; dynamic batching later stacks several requests' DataFrames
(or arrays) into one call here and splits the answer, without touching parsing or HTTP.

Errors are judged as MLflow's own server judges them: an `MlflowException` (schema enforcement:
missing columns, wrong types, bad params) keeps its HTTP status and MLflow's message; anything
else the model raises on an input that passed enforcement is taken as an input the model cannot
handle (400, MLflow's wording), logged with its traceback. Answers: Azure's generated MLflow
script returns the predictions as JSON (DataFrames as records); MLflow's server wraps them in
`{"predictions": ...}` — each format gets the answer its own server gives.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

from scoring_servers.mlflow.errors import ClientError
from scoring_servers.mlflow.loading import ServedModel

logger = logging.getLogger("scoring_servers.mlflow")

MODEL_FAILED_MESSAGE = (
    "Encountered an unexpected error while evaluating the model. Verify that the serialized "
    "input Dataframe is compatible with the model for inference.")


def predict(model: ServedModel, data: Any, params: dict[str, Any] | None) -> Any:
    """`PyFuncModel.predict`, which enforces the signature (MLflow's own enforcement)."""
    try:
        if model.takes_params:
            return model.pyfunc.predict(data, params=params)
        return model.pyfunc.predict(data)
    except MlflowException as exc:
        status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
        if status >= 500:
            raise
        raise ClientError(exc.message, status) from None
    except Exception:
        logger.exception("the model raised on an input that passed its signature")
        raise ClientError(MODEL_FAILED_MESSAGE) from None


def encode_predictions(predictions: Any, mlflow_format: bool) -> bytes:
    """JSON as the matching server writes it (json.dumps separators, DataFrames as records)."""
    jsonable = _get_jsonable_obj(predictions, pandas_orient="records")  # type: ignore[no-untyped-call]
    document = {"predictions": jsonable} if mlflow_format else jsonable
    return json.dumps(document, cls=NumpyEncoder).encode()

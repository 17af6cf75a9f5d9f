"""A model for the batching tests that shows how it was called: each row's answer carries the
number of rows in its `predict` call, and a row holding POISON makes the whole call raise (as
a model choking on one bad input would). Importable, so the server unpickles it by reference."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd  # type: ignore[import-untyped]
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema

from tests.scoring_servers.mlflow.models import mlflow_advice_silenced

POISON = 666.0

with mlflow_advice_silenced():
    class CallProbeModel(PythonModel):
        # MLflow's own opt-out of its type-hint wrapper, whose advice (a UserWarning at class
        # creation) escapes catch_warnings; the signature below is explicit anyway.
        _skip_type_hint_validation = True

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            if (model_input == POISON).to_numpy().any():
                raise ValueError("poisoned row")
            return pd.DataFrame({"total": model_input["a"] + model_input["b"],
                                 "rows_in_call": [len(model_input)] * len(model_input)})


def save_call_probe_model(path: Path) -> Path:
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "a"), ColSpec("double", "b")]),
        outputs=Schema([ColSpec("double", "total"), ColSpec("long", "rows_in_call")]))
    with mlflow_advice_silenced():
        mlflow.pyfunc.save_model(str(path), python_model=CallProbeModel(), signature=signature)
    return path

"""Small MLflow models saved in a test's tmp_path: each test compares the server's answers with
`mlflow.pyfunc.load_model(path).predict(...)` of the same folder.

The pyfunc classes live in this module and are pickled by value (`_by_value`): a deployment of
an MLflow model runs in the environment its requirements ask for (docs/environments.md), where
this repository's `tests` package is not importable, as a user's notebook module would not be.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import sklearn  # type: ignore[import-untyped]
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from sklearn.linear_model import LinearRegression  # type: ignore[import-untyped]

COLUMNS = ["age", "bmi", "bp"]


@contextmanager
def mlflow_advice_silenced() -> Iterator[None]:
    """MLflow's UserWarnings when saving (no input example, no type hints) are advice to users;
    pytest would turn them into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(rng.normal(size=(40, len(COLUMNS))), columns=COLUMNS)


def save_sklearn_model(path: Path) -> Path:
    """A regression on named double columns, with a signature and an input example."""
    frame = training_frame()
    target = 3.0 * frame["age"] - frame["bmi"] + 0.5 * frame["bp"] + 0.25
    model = LinearRegression().fit(frame, target)
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(frame, model.predict(frame)),
        input_example=frame.head(2),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
    return path


def save_tensor_model(path: Path) -> Path:
    """The same kind of regression on an unnamed (-1, 3) float64 tensor."""
    features = training_frame().to_numpy()
    model = LinearRegression().fit(features, features @ np.array([1.0, -2.0, 0.5]))
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(features, model.predict(features)),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE)
    return path


# (PythonModel subclasses without type hints draw the same advice at definition.)
with mlflow_advice_silenced():
    class NamedTensorModel(PythonModel):
        """x * scale + y, on named tensors, with a `scale` param (default 1.0)."""

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            scale = (params or {}).get("scale", 1.0)
            return model_input["x"] * scale + model_input["y"]


    class FrameModel(PythonModel):
        """A DataFrame out: the sum and the scaled first column of two double columns."""

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            scale = (params or {}).get("scale", 1.0)
            return pd.DataFrame({"total": model_input["a"] + model_input["b"],
                                 "scaled": model_input["a"] * scale})


@contextmanager
def _by_value() -> Iterator[None]:
    """The classes of this module pickled with their code, not as `tests....FrameModel`."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def save_named_tensor_model(path: Path) -> Path:
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2), "x"),
                       TensorSpec(np.dtype("float64"), (-1, 2), "y")]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
        params=ParamSchema([ParamSpec("scale", "double", 1.0)]))
    with mlflow_advice_silenced(), _by_value():
        mlflow.pyfunc.save_model(str(path), python_model=NamedTensorModel(), signature=signature)
    return path


def save_frame_model(path: Path) -> Path:
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "a"), ColSpec("double", "b")]),
        outputs=Schema([ColSpec("double", "total"), ColSpec("double", "scaled")]),
        params=ParamSchema([ParamSpec("scale", "double", 1.0)]))
    with mlflow_advice_silenced(), _by_value():  # the sklearn model's requirements: one
        mlflow.pyfunc.save_model(  # environment for the test models, as a project's share one
            str(path), python_model=FrameModel(), signature=signature,
            extra_pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    return path


def fake_flavour_model(path: Path, loader_module: str, requirement: str | None) -> Path:
    """An MLmodel whose pyfunc loader module does not exist here (a missing flavour package)."""
    path.mkdir(parents=True)
    (path / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        f"    loader_module: {loader_module}\n"
        "    data: model.bin\n"
        "    python_version: 3.11.7\n")
    (path / "model.bin").write_bytes(b"\0")
    if requirement is not None:
        (path / "requirements.txt").write_text(f"mlflow\n{requirement}\n")
    return path


def pyfunc_predict(path: Path, data: Any, params: dict[str, Any] | None = None) -> Any:
    """What MLflow itself predicts for this folder, loaded fresh as the server loads it."""
    with mlflow_advice_silenced():
        model = mlflow.pyfunc.load_model(str(path))
    return model.predict(data, params=params) if params is not None else model.predict(data)


def input_schema(path: Path) -> Schema:
    with mlflow_advice_silenced():
        schema: Schema = mlflow.pyfunc.load_model(str(path)).metadata.get_input_schema()
    return schema
